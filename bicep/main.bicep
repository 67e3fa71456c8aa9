metadata name = 'Supafana platform'
metadata description = 'Everything one Supafana environment runs on: the Function App (Flex Consumption), its storage, Service Bus, Key Vault, monitoring, network, public DNS zone, nginx gateway VM, the Grafana host template spec, and the least-privilege roles of the function identity. Deploy with `az deployment sub create` (docs/deploy.md).'

targetScope = 'subscription'

// ----- Parameters -------------------------------------------------------------------------------

@description('Required. Environment name, 2-8 lower-case letters or digits (e.g. "dev", "prod"). Part of every resource name.')
@minLength(2)
@maxLength(8)
param environmentName string

@description('Optional. Azure region of every regional resource. It must offer the Flex Consumption plan.')
param location string = deployment().location

@description('Optional. Tags applied to every resource of the platform.')
param tags object = {}

@description('Required. The Grafana domain (lower case): each project is served at https://<ref>.<grafanaDomain>. A public DNS zone of this name is created here.')
@minLength(4)
@maxLength(200)
param grafanaDomain string

@description('Optional. Public https origin of the SPA and the API (same origin, served by Front Door), e.g. "https://app.example.com": its host becomes Front Door\'s custom domain. Empty: the Front Door endpoint\'s *.azurefd.net name.')
param publicBaseUrl string = ''

@description('Required. Client id of the Supabase OAuth app (its secret goes into Key Vault).')
@minLength(1)
param supabaseClientId string

@description('Required. Stripe price id of the per-project subscription item (its secret key goes into Key Vault).')
@minLength(1)
param stripePriceId string

@description('Required. Loops transactional e-mail ids.')
param loopsTransactionalIds loopsTransactionalIdsType

@description('Optional. Trial length in hours.')
@minValue(1)
@maxValue(1440)
param trialHours int = 72

@description('Optional. Grace period in hours after a failed payment before paid instances are removed.')
@minValue(0)
@maxValue(1440)
param billingGraceHours int = 72

@description('Optional. VM size of each Grafana host (see the vmSize default of grafana-host.bicep for the reasoning).')
param grafanaVmSize string = 'Standard_B2s'

@description('Optional. Version of the grafana-host template spec the app deploys (published with `az ts create`).')
@minLength(1)
param grafanaTemplateSpecVersion string = '1.0.0'

@description('Required. SSH public key for break-glass access to the gateway and the Grafana hosts (password authentication is disabled; inbound SSH is closed).')
@minLength(1)
param adminSshPublicKey string

@description('Optional. VM size of the nginx gateway.')
param gatewayVmSize string = 'Standard_B1ms'

@description('Optional. Name of the wildcard certificate (*.<grafanaDomain>) in Key Vault. Fixed per environment.')
@minLength(1)
@maxLength(127)
param gatewayCertificateName string = 'grafana-wildcard'

@description('Optional. Set to true once the certificate is imported into Key Vault: grants the gateway VM read on that certificate\'s secret (a role scope must exist).')
param gatewayCertificateImported bool = false

@description('Optional. SMTP relay host for the Grafana hosts\' alert e-mail. Empty: no SMTP (the password is not referenced either).')
param smtpHost string = ''

@description('Optional. SMTP relay port.')
@minValue(1)
@maxValue(65535)
param smtpPort int = 587

@description('Optional. SMTP user name (its password goes into Key Vault as smtp-password).')
param smtpUser string = ''

@description('Optional. Sender address of the Grafana alert e-mail.')
param smtpFromAddress string = ''

@description('Optional. Object id of the operator (user or group): may set Key Vault secrets, import the certificate, read the tables and peek dead letters. Empty: no operator roles.')
param operatorPrincipalId string = ''

@description('Optional. Principal type of operatorPrincipalId.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param operatorPrincipalType string = 'User'

@description('Optional. E-mail addresses that receive the operator alerts. Empty: alerts show in the portal only.')
param alertEmailAddresses string[] = []

@description('Optional. Key Vault purge protection. Keep it on in production; off lets a torn-down environment be re-created at once.')
param keyVaultPurgeProtection bool = true

@description('Optional. Replication of the storage account.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param storageSku string = 'Standard_LRS'

@description('Optional. Maximum instances of the Function App (Flex Consumption, at least 40).')
@minValue(40)
@maxValue(1000)
param functionMaximumInstanceCount int = 40

@description('Optional. Days Log Analytics keeps logs.')
@minValue(30)
@maxValue(730)
param logRetentionInDays int = 30

@description('Optional. Address space of the VNet.')
param vnetAddressPrefix string = '10.40.0.0/16'

@description('Optional. Subnet of the Function App VNet integration.')
param functionsSubnetPrefix string = '10.40.0.0/24'

@description('Optional. Subnet of the gateway VM.')
param gatewaySubnetPrefix string = '10.40.1.0/27'

@description('Optional. Subnet of the Grafana hosts.')
param grafanaSubnetPrefix string = '10.40.4.0/22'

// ----- Names ------------------------------------------------------------------------------------

var env = toLower(environmentName)
var resourceToken = toLower(uniqueString(subscription().id, env, location))
var namePrefix = 'supafana-${env}'
var platformTags = union(tags, {
  'supafana-environment': env
})

// Secret names in Key Vault, keyed by the app setting that references them.
var keyVaultSecretNames = {
  SECRET_KEYS: 'secret-keys'
  SESSION_SECRET: 'session-secret'
  SUPABASE_CLIENT_SECRET: 'supabase-client-secret'
  STRIPE_SECRET_KEY: 'stripe-secret-key'
  STRIPE_WEBHOOK_SECRET: 'stripe-webhook-secret'
  LOOPS_API_KEY: 'loops-api-key'
  SMTP_PASSWORD: 'smtp-password'
  GRAFANA_SESSION_KEYS: 'grafana-session-keys'
}

// ----- Resource groups --------------------------------------------------------------------------

resource platformRg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${namePrefix}'
  location: location
  tags: platformTags
}

// Only Grafana hosts live here: the function identity may manage VMs, NICs and disks in this group
// and in no other.
resource grafanaRg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${namePrefix}-grafana'
  location: location
  tags: platformTags
}

// ----- Platform ---------------------------------------------------------------------------------

module roles 'modules/roles.bicep' = {
  name: '${namePrefix}-roles'
  params: {
    environmentName: env
    resourceToken: resourceToken
    platformResourceGroupId: platformRg.id
    grafanaResourceGroupId: grafanaRg.id
  }
}

module network 'modules/network.bicep' = {
  scope: platformRg
  name: '${namePrefix}-network'
  params: {
    namePrefix: namePrefix
    location: location
    tags: platformTags
    addressPrefix: vnetAddressPrefix
    functionsSubnetPrefix: functionsSubnetPrefix
    gatewaySubnetPrefix: gatewaySubnetPrefix
    grafanaSubnetPrefix: grafanaSubnetPrefix
  }
}

module storage 'modules/storage.bicep' = {
  scope: platformRg
  name: '${namePrefix}-storage'
  params: {
    name: take('st${replace(env, '-', '')}${resourceToken}', 24)
    location: location
    tags: platformTags
    skuName: storageSku
  }
}

module serviceBus 'modules/serviceBus.bicep' = {
  scope: platformRg
  name: '${namePrefix}-servicebus'
  params: {
    name: 'sb-${namePrefix}-${resourceToken}'
    location: location
    tags: platformTags
  }
}

module keyVault 'modules/keyVault.bicep' = {
  scope: platformRg
  name: '${namePrefix}-keyvault'
  params: {
    name: take('kv-${env}-${resourceToken}', 24)
    location: location
    tags: platformTags
    enablePurgeProtection: keyVaultPurgeProtection
  }
}

module monitoring 'modules/monitoring.bicep' = {
  scope: platformRg
  name: '${namePrefix}-monitoring'
  params: {
    namePrefix: namePrefix
    location: location
    tags: platformTags
    retentionInDays: logRetentionInDays
    serviceBusNamespaceId: serviceBus.outputs.resourceId
    queueNames: serviceBus.outputs.queueNames
    alertEmailAddresses: alertEmailAddresses
  }
}

module dns 'modules/dns.bicep' = {
  scope: platformRg
  name: '${namePrefix}-dns'
  params: {
    zoneName: toLower(grafanaDomain)
    tags: platformTags
  }
}

module templateSpec 'modules/templateSpec.bicep' = {
  scope: platformRg
  name: '${namePrefix}-templatespec'
  params: {
    name: 'grafana-host'
    location: location
    tags: platformTags
  }
}

module gateway 'modules/gateway.bicep' = {
  scope: platformRg
  name: '${namePrefix}-gateway'
  params: {
    namePrefix: namePrefix
    location: location
    tags: platformTags
    subnetId: network.outputs.gatewaySubnetId
    vmSize: gatewayVmSize
    adminSshPublicKey: adminSshPublicKey
    keyVaultUri: keyVault.outputs.vaultUri
    certificateName: gatewayCertificateName
  }
}

module functionApp 'modules/functionApp.bicep' = {
  scope: platformRg
  name: '${namePrefix}-functionapp'
  params: {
    name: 'func-${namePrefix}-${take(resourceToken, 6)}'
    planName: 'plan-${namePrefix}'
    location: location
    tags: platformTags
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    subnetId: network.outputs.functionsSubnetId
    maximumInstanceCount: functionMaximumInstanceCount
  }
}

// The web app and /api on one origin: Front Door in front of the SPA's blobs and the Function App.
module web 'modules/web.bicep' = {
  scope: platformRg
  name: '${namePrefix}-web'
  params: {
    namePrefix: namePrefix
    storageAccountName: take('stweb${replace(env, '-', '')}${resourceToken}', 24)
    location: location
    tags: platformTags
    functionAppHostName: functionApp.outputs.defaultHostName
    customHostName: empty(publicBaseUrl) ? '' : split(replace(publicBaseUrl, 'https://', ''), '/')[0]
  }
}

// ----- Access -----------------------------------------------------------------------------------

module platformRbac 'modules/platformRbac.bicep' = {
  scope: platformRg
  name: '${namePrefix}-rbac'
  params: {
    functionPrincipalId: functionApp.outputs.principalId
    gatewayPrincipalId: gateway.outputs.principalId
    storageAccountName: storage.outputs.name
    serviceBusNamespaceName: serviceBus.outputs.name
    queueNames: serviceBus.outputs.queueNames
    keyVaultName: keyVault.outputs.name
    gatewayCertificateName: gatewayCertificateName
    gatewayCertificateImported: gatewayCertificateImported
    gatewaySigninKeysName: keyVaultSecretNames.GRAFANA_SESSION_KEYS
    appInsightsName: monitoring.outputs.appInsightsName
    dnsZoneName: dns.outputs.name
    gatewayVmName: gateway.outputs.vmName
    vnetName: network.outputs.vnetName
    grafanaSubnetName: network.outputs.grafanaSubnetName
    templateSpecName: templateSpec.outputs.name
    subnetJoinRoleId: roles.outputs.subnetJoinRoleId
    templateSpecReaderRoleId: roles.outputs.templateSpecReaderRoleId
    gatewayRunCommandRoleId: roles.outputs.gatewayRunCommandRoleId
    dnsARecordsRoleId: roles.outputs.dnsARecordsRoleId
    operatorPrincipalId: operatorPrincipalId
    operatorPrincipalType: operatorPrincipalType
  }
}

module grafanaRbac 'modules/grafanaRbac.bicep' = {
  scope: grafanaRg
  name: '${namePrefix}-grafana-rbac'
  params: {
    functionPrincipalId: functionApp.outputs.principalId
    grafanaHostsRoleId: roles.outputs.grafanaHostsRoleId
  }
}

// Status of Compute/Network long-running operations lives at subscription-level URLs (see roles.bicep).
module subscriptionRbac 'modules/subscriptionRbac.bicep' = {
  name: '${namePrefix}-subscription-rbac'
  params: {
    functionPrincipalId: functionApp.outputs.principalId
    operationStatusReaderRoleId: roles.outputs.operationStatusReaderRoleId
  }
}

// ----- App settings -----------------------------------------------------------------------------

var vaultUri = keyVault.outputs.vaultUri
var grafanaTemplateSpecId = '${templateSpec.outputs.resourceId}/versions/${grafanaTemplateSpecVersion}'
var effectivePublicBaseUrl = empty(publicBaseUrl) ? 'https://${web.outputs.hostName}' : publicBaseUrl

// Exactly the settings lib/config.ts reads (test/bicep/contract.test.ts compares the two lists),
// plus the Functions host's own. Left to their defaults on purpose: the connection-string variants
// StorageConnection and ServiceBusConnection (identity is used), AZURE_CLIENT_ID (the
// system-assigned identity), SUPABASE_API_URL, LOOPS_API_URL and STRIPE_API_URL (the public
// APIs), and the PROVISION_* budgets.
var appSettings = {
  // Functions host. On Flex Consumption the runtime and its version come from functionAppConfig:
  // FUNCTIONS_WORKER_RUNTIME, FUNCTIONS_EXTENSION_VERSION and WEBSITE_* settings are not allowed.
  AzureWebJobsStorage__accountName: storage.outputs.name
  AzureWebJobsStorage__credential: 'managedidentity'
  APPLICATIONINSIGHTS_CONNECTION_STRING: monitoring.outputs.appInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD'

  // The app.
  PUBLIC_BASE_URL: effectivePublicBaseUrl
  SECRET_KEYS: '@Microsoft.KeyVault(SecretUri=${vaultUri}secrets/${keyVaultSecretNames.SECRET_KEYS}/)'
  SESSION_SECRET: '@Microsoft.KeyVault(SecretUri=${vaultUri}secrets/${keyVaultSecretNames.SESSION_SECRET}/)'
  StorageConnection__tableServiceUri: storage.outputs.tableEndpoint
  ServiceBusConnection__fullyQualifiedNamespace: serviceBus.outputs.fullyQualifiedNamespace
  PROVISIONING_QUEUE: serviceBus.outputs.queueNamesByKey.provisioning
  GATEWAY_QUEUE: serviceBus.outputs.queueNamesByKey.gateway
  SUPABASE_CLIENT_ID: supabaseClientId
  SUPABASE_CLIENT_SECRET: '@Microsoft.KeyVault(SecretUri=${vaultUri}secrets/${keyVaultSecretNames.SUPABASE_CLIENT_SECRET}/)'
  LOOPS_API_KEY: '@Microsoft.KeyVault(SecretUri=${vaultUri}secrets/${keyVaultSecretNames.LOOPS_API_KEY}/)'
  LOOPS_TX_VERIFICATION_CODE: loopsTransactionalIds.verificationCode
  LOOPS_TX_INSTANCE_READY: loopsTransactionalIds.instanceReady
  LOOPS_TX_TRIAL_ENDING: loopsTransactionalIds.trialEnding
  LOOPS_TX_PAYMENT_FAILED: loopsTransactionalIds.paymentFailed
  LOOPS_TX_INSTANCE_DELETED: loopsTransactionalIds.instanceDeleted
  LOOPS_TX_INSTANCE_FAILED: loopsTransactionalIds.instanceFailed
  STRIPE_SECRET_KEY: '@Microsoft.KeyVault(SecretUri=${vaultUri}secrets/${keyVaultSecretNames.STRIPE_SECRET_KEY}/)'
  STRIPE_WEBHOOK_SECRET: '@Microsoft.KeyVault(SecretUri=${vaultUri}secrets/${keyVaultSecretNames.STRIPE_WEBHOOK_SECRET}/)'
  STRIPE_PRICE_ID: stripePriceId
  TRIAL_HOURS: string(trialHours)
  BILLING_GRACE_HOURS: string(billingGraceHours)
  ARM_ENDPOINT: environment().resourceManager
  AZURE_SUBSCRIPTION_ID: subscription().subscriptionId
  GRAFANA_RESOURCE_GROUP: grafanaRg.name
  GRAFANA_TEMPLATE_SPEC_ID: grafanaTemplateSpecId
  GRAFANA_DOMAIN: toLower(grafanaDomain)
  GRAFANA_VM_SIZE: grafanaVmSize
  GRAFANA_SUBNET_ID: network.outputs.grafanaSubnetId
  GRAFANA_ADMIN_SSH_PUBLIC_KEY: adminSshPublicKey
  DNS_ZONE_NAME: dns.outputs.name
  DNS_RESOURCE_GROUP: platformRg.name
  GATEWAY_RESOURCE_GROUP: platformRg.name
  GATEWAY_VM_NAME: gateway.outputs.vmName
  GATEWAY_PUBLIC_IP: gateway.outputs.publicIpAddress
  GATEWAY_PRIVATE_IP: gateway.outputs.privateIpAddress
  GRAFANA_SESSION_KEYS: '@Microsoft.KeyVault(SecretUri=${vaultUri}secrets/${keyVaultSecretNames.GRAFANA_SESSION_KEYS}/)'
  SMTP_HOST: smtpHost
  SMTP_PORT: string(smtpPort)
  SMTP_USER: smtpUser
  SMTP_PASSWORD: empty(smtpHost)
    ? ''
    : '@Microsoft.KeyVault(SecretUri=${vaultUri}secrets/${keyVaultSecretNames.SMTP_PASSWORD}/)'
  SMTP_FROM_ADDRESS: smtpFromAddress
}

// Written after the role assignments, so the Key Vault references resolve and the host reaches
// its storage on the first start.
module settings 'modules/appSettings.bicep' = {
  scope: platformRg
  name: '${namePrefix}-appsettings'
  params: {
    functionAppName: functionApp.outputs.name
    appSettings: appSettings
  }
  dependsOn: [
    platformRbac
    grafanaRbac
    subscriptionRbac
  ]
}

// ----- Outputs (names equal to the app settings they feed) --------------------------------------

@description('Subscription of the environment (AZURE_SUBSCRIPTION_ID).')
output AZURE_SUBSCRIPTION_ID string = subscription().subscriptionId

@description('Resource group of the Grafana hosts (GRAFANA_RESOURCE_GROUP).')
output GRAFANA_RESOURCE_GROUP string = grafanaRg.name

@description('Template spec version the app deploys (GRAFANA_TEMPLATE_SPEC_ID). Publish it with `az ts create`.')
output GRAFANA_TEMPLATE_SPEC_ID string = grafanaTemplateSpecId

@description('The Grafana domain (GRAFANA_DOMAIN).')
output GRAFANA_DOMAIN string = toLower(grafanaDomain)

@description('Subnet the Grafana hosts join (the template spec parameter subnetId).')
output GRAFANA_SUBNET_ID string = network.outputs.grafanaSubnetId

@description('Public DNS zone (DNS_ZONE_NAME).')
output DNS_ZONE_NAME string = dns.outputs.name

@description('Resource group of the DNS zone (DNS_RESOURCE_GROUP).')
output DNS_RESOURCE_GROUP string = platformRg.name

@description('Resource group of the gateway VM (GATEWAY_RESOURCE_GROUP).')
output GATEWAY_RESOURCE_GROUP string = platformRg.name

@description('Gateway VM name (GATEWAY_VM_NAME).')
output GATEWAY_VM_NAME string = gateway.outputs.vmName

@description('Gateway public IP (GATEWAY_PUBLIC_IP).')
output GATEWAY_PUBLIC_IP string = gateway.outputs.publicIpAddress

@description('Public origin of the app (PUBLIC_BASE_URL).')
output PUBLIC_BASE_URL string = effectivePublicBaseUrl

@description('The platform resource group (everything but the Grafana hosts).')
output PLATFORM_RESOURCE_GROUP string = platformRg.name

@description('Function App name (for `func azure functionapp publish`).')
output FUNCTION_APP_NAME string = functionApp.outputs.name

@description('Function App default host name.')
output FUNCTION_APP_HOST_NAME string = functionApp.outputs.defaultHostName

@description('Template spec name (for `az ts create --name`).')
output GRAFANA_TEMPLATE_SPEC_NAME string = templateSpec.outputs.name

@description('Key Vault name (for `az keyvault secret set` and `az keyvault certificate import`).')
output KEY_VAULT_NAME string = keyVault.outputs.name

@description('Secret names the app settings reference, keyed by setting.')
output KEY_VAULT_SECRET_NAMES object = keyVaultSecretNames

@description('Name servers to delegate the Grafana domain to.')
output DNS_NAME_SERVERS array = dns.outputs.nameServers

@description('Storage account name (tables in the portal\'s Storage browser).')
output STORAGE_ACCOUNT_NAME string = storage.outputs.name

@description('Service Bus namespace name (dead-letter queues in Service Bus Explorer).')
output SERVICE_BUS_NAMESPACE string = serviceBus.outputs.name

@description('Application Insights name (logs and failures).')
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.appInsightsName

@description('Static outbound IP of the functions and the Grafana hosts.')
output OUTBOUND_IP string = network.outputs.natPublicIpAddress

// ----- Definitions ------------------------------------------------------------------------------

@description('Loops transactional e-mail ids (Loops dashboard, Transactional).')
type loopsTransactionalIdsType = {
  @description('Required. The 6-digit verification code e-mail.')
  verificationCode: string

  @description('Required. "Your Grafana is ready".')
  instanceReady: string

  @description('Required. "Your trial ends soon".')
  trialEnding: string

  @description('Required. "Your payment failed".')
  paymentFailed: string

  @description('Required. "Your Grafana was deleted".')
  instanceDeleted: string

  @description('Required, may be empty. "Replacing your Grafana host failed" (an upgrade or an automatic heal); empty: such failures are only logged.')
  instanceFailed: string
}

@description('Storage account the built web app (web/dist) is uploaded to.')
output WEB_STORAGE_ACCOUNT string = web.outputs.storageAccountName

@description('Blob container of the built web app.')
output WEB_CONTAINER string = web.outputs.containerName

@description('Front Door profile and endpoint (cache purge after uploading the web app).')
output FRONT_DOOR_PROFILE string = web.outputs.profileName

@description('Front Door endpoint name.')
output FRONT_DOOR_ENDPOINT string = web.outputs.endpointName

@description('CNAME target for the app\'s custom host name.')
output FRONT_DOOR_ENDPOINT_HOST string = web.outputs.endpointHostName

@description('TXT value for _dnsauth.<custom host> (empty without a custom host name).')
output WEB_HOST_VALIDATION_TOKEN string = web.outputs.customDomainValidationToken
