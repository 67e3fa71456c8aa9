// Development environment. Deploy with:
//   az deployment sub create --name supafana-dev --location westeurope \
//     --template-file bicep/main.bicep --parameters bicep/environments/dev.bicepparam
// Values that differ per operator come from environment variables (see docs/deploy.md).
using '../main.bicep'

param environmentName = 'dev'
param location = readEnvironmentVariable('SUPAFANA_LOCATION', 'westeurope')
param grafanaDomain = readEnvironmentVariable('SUPAFANA_GRAFANA_DOMAIN')
param publicBaseUrl = readEnvironmentVariable('SUPAFANA_PUBLIC_BASE_URL', '')
param supabaseClientId = readEnvironmentVariable('SUPAFANA_SUPABASE_CLIENT_ID')
param stripePriceId = readEnvironmentVariable('SUPAFANA_STRIPE_PRICE_ID')
param loopsTransactionalIds = {
  verificationCode: readEnvironmentVariable('SUPAFANA_LOOPS_TX_VERIFICATION_CODE')
  instanceReady: readEnvironmentVariable('SUPAFANA_LOOPS_TX_INSTANCE_READY')
  trialEnding: readEnvironmentVariable('SUPAFANA_LOOPS_TX_TRIAL_ENDING')
  paymentFailed: readEnvironmentVariable('SUPAFANA_LOOPS_TX_PAYMENT_FAILED')
  instanceDeleted: readEnvironmentVariable('SUPAFANA_LOOPS_TX_INSTANCE_DELETED')
  instanceFailed: readEnvironmentVariable('SUPAFANA_LOOPS_TX_INSTANCE_FAILED', '')
}
param adminSshPublicKey = readEnvironmentVariable('SUPAFANA_ADMIN_SSH_PUBLIC_KEY')
param gatewayCertificateImported = bool(readEnvironmentVariable('SUPAFANA_CERTIFICATE_IMPORTED', 'false'))
param operatorPrincipalId = readEnvironmentVariable('SUPAFANA_OPERATOR_PRINCIPAL_ID', '')
param smtpHost = readEnvironmentVariable('SUPAFANA_SMTP_HOST', '')
param smtpUser = readEnvironmentVariable('SUPAFANA_SMTP_USER', '')
param smtpFromAddress = readEnvironmentVariable('SUPAFANA_SMTP_FROM_ADDRESS', '')

// Short trials make the expiry path easy to exercise; a throwaway vault can be purged at once.
param trialHours = 2
param billingGraceHours = 1
param keyVaultPurgeProtection = false
param storageSku = 'Standard_LRS'
param tags = {
  environment: 'dev'
}
