metadata name = 'Supafana platform role assignments'
metadata description = 'What the function identity, the gateway VM and (optionally) the operator may do in the platform resource group. Every assignment is scoped to the one resource it needs.'

@description('Required. Principal id of the Function App\'s system-assigned identity.')
param functionPrincipalId string

@description('Required. Principal id of the gateway VM\'s system-assigned identity.')
param gatewayPrincipalId string

@description('Required. Storage account name.')
param storageAccountName string

@description('Required. Service Bus namespace name.')
param serviceBusNamespaceName string

@description('Required. Names of the queues the app sends to and receives from.')
param queueNames array

@description('Required. Key Vault name.')
param keyVaultName string

@description('Required. Name of the wildcard certificate in Key Vault.')
param gatewayCertificateName string

@description('Required. Whether the certificate has been imported (its secret must exist to be a role scope).')
param gatewayCertificateImported bool

@description('Optional. Key Vault secret with the Grafana sign-in key set (GRAFANA_SESSION_KEYS); the gateway reads it too. Set before the certificate is imported (docs/deploy.md, "Secrets").')
param gatewaySigninKeysName string = 'grafana-session-keys'

@description('Required. Application Insights component name.')
param appInsightsName string

@description('Required. Public DNS zone name.')
param dnsZoneName string

@description('Required. Gateway VM name.')
param gatewayVmName string

@description('Required. VNet name.')
param vnetName string

@description('Required. Name of the Grafana subnet.')
param grafanaSubnetName string

@description('Required. Name of the Grafana host template spec.')
param templateSpecName string

@description('Required. Role definition id of the custom "subnet join" role.')
param subnetJoinRoleId string

@description('Required. Role definition id of the custom "template spec reader" role.')
param templateSpecReaderRoleId string

@description('Required. Role definition id of the custom "gateway run command" role.')
param gatewayRunCommandRoleId string

@description('Required. Role definition id of the custom "DNS A records" role.')
param dnsARecordsRoleId string

@description('Optional. Object id of the operator (user or group) who sets secrets, imports the certificate and inspects tables and dead letters. Empty: no operator roles.')
param operatorPrincipalId string = ''

@description('Optional. Principal type of operatorPrincipalId.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param operatorPrincipalType string = 'User'

// Built-in role definitions (ids are the same in every tenant).
var roles = {
  storageBlobDataOwner: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b')
  storageTableDataContributor: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3')
  storageTableDataReader: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '76199698-9eea-4c19-bc75-cec21354c6b6')
  serviceBusDataSender: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39')
  serviceBusDataReceiver: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0')
  keyVaultSecretsUser: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '4633458b-17de-408a-b874-0445c86b69e6')
  keyVaultSecretsOfficer: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7')
  keyVaultCertificatesOfficer: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'a4417e6f-fecd-4de8-b567-7b0420556985')
  monitoringMetricsPublisher: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '3913510d-42f4-4e42-8a64-420c390055eb')
}

var hasOperator = !empty(operatorPrincipalId)

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource namespace 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' existing = {
  name: serviceBusNamespaceName
}

resource queues 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' existing = [
  for queueName in queueNames: {
    parent: namespace
    name: queueName
  }
]

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName

  resource certificateSecret 'secrets' existing = {
    name: gatewayCertificateName
  }

  resource signinKeysSecret 'secrets' existing = {
    name: gatewaySigninKeysName
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource zone 'Microsoft.Network/dnsZones@2018-05-01' existing = {
  name: dnsZoneName
}

resource gatewayVm 'Microsoft.Compute/virtualMachines@2024-07-01' existing = {
  name: gatewayVmName
}

resource vnet 'Microsoft.Network/virtualNetworks@2024-05-01' existing = {
  name: vnetName

  resource grafanaSubnet 'subnets' existing = {
    name: grafanaSubnetName
  }
}

resource templateSpec 'Microsoft.Resources/templateSpecs@2022-02-01' existing = {
  name: templateSpecName
}

// ----- Function identity -------------------------------------------------------------------------

// Host storage (AzureWebJobsStorage__accountName): the Functions host keeps its locks and keys in
// blob containers it creates itself, and the Flex Consumption plan reads the app package from
// the deployment container; the host's identity-based storage needs Blob Data Owner.
resource functionBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionPrincipalId, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: roles.storageBlobDataOwner
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The app's state (StorageConnection__tableServiceUri): read and write entities.
resource functionTableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionPrincipalId, roles.storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: roles.storageTableDataContributor
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Send and receive on each queue, scoped to the queue (not the namespace). Without Data Owner the
// Functions scale controller estimates queue length by peeking instead of reading the entity's
// runtime properties; at this app's message rates that is accurate enough.
resource functionQueueSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for i in range(0, length(queueNames)): {
    name: guid(queues[i].id, functionPrincipalId, roles.serviceBusDataSender)
    scope: queues[i]
    properties: {
      roleDefinitionId: roles.serviceBusDataSender
      principalId: functionPrincipalId
      principalType: 'ServicePrincipal'
    }
  }
]

resource functionQueueReceiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for i in range(0, length(queueNames)): {
    name: guid(queues[i].id, functionPrincipalId, roles.serviceBusDataReceiver)
    scope: queues[i]
    properties: {
      roleDefinitionId: roles.serviceBusDataReceiver
      principalId: functionPrincipalId
      principalType: 'ServicePrincipal'
    }
  }
]

// Key Vault references in app settings resolve with the app's identity. Scoped to the vault rather
// than to each secret because the secrets are created by the operator after the first deployment
// (a role scope must exist). The vault holds only this app's secrets and the gateway certificate,
// whose key the function identity can already read on the gateway through run command.
resource functionSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, functionPrincipalId, roles.keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: roles.keyVaultSecretsUser
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Telemetry ingestion with Entra ID (APPLICATIONINSIGHTS_AUTHENTICATION_STRING).
resource functionMetricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, functionPrincipalId, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: roles.monitoringMetricsPublisher
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// A records <ref> -> gateway IP in the Grafana zone, and nothing else in DNS.
resource functionDnsARecords 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(zone.id, functionPrincipalId, dnsARecordsRoleId)
  scope: zone
  properties: {
    roleDefinitionId: dnsARecordsRoleId
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Push the rendered nginx.conf to the gateway VM.
resource functionGatewayRunCommand 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(gatewayVm.id, functionPrincipalId, gatewayRunCommandRoleId)
  scope: gatewayVm
  properties: {
    roleDefinitionId: gatewayRunCommandRoleId
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Grafana host NICs join the Grafana subnet (and no other).
resource functionSubnetJoin 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vnet::grafanaSubnet.id, functionPrincipalId, subnetJoinRoleId)
  scope: vnet::grafanaSubnet
  properties: {
    roleDefinitionId: subnetJoinRoleId
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Deployments of the Grafana host link this template spec.
resource functionTemplateSpecReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(templateSpec.id, functionPrincipalId, templateSpecReaderRoleId)
  scope: templateSpec
  properties: {
    roleDefinitionId: templateSpecReaderRoleId
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// ----- Gateway VM identity -----------------------------------------------------------------------

// The gateway reads the certificate's secret (certificate and private key).
resource gatewayCertificateReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (gatewayCertificateImported) {
  name: guid(vault::certificateSecret.id, gatewayPrincipalId, roles.keyVaultSecretsUser)
  scope: vault::certificateSecret
  properties: {
    roleDefinitionId: roles.keyVaultSecretsUser
    principalId: gatewayPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The gateway verifies Grafana sign-ins itself: it reads the sign-in key set, and no other secret.
// Deployed with the certificate flag, by which time the app's secrets are set (docs/deploy.md).
resource gatewaySigninKeysReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (gatewayCertificateImported) {
  name: guid(vault::signinKeysSecret.id, gatewayPrincipalId, roles.keyVaultSecretsUser)
  scope: vault::signinKeysSecret
  properties: {
    roleDefinitionId: roles.keyVaultSecretsUser
    principalId: gatewayPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// ----- Operator (optional) -----------------------------------------------------------------------

// Set the app's secrets (SECRET_KEYS and the others) in the vault.
resource operatorSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (hasOperator) {
  name: guid(vault.id, operatorPrincipalId, roles.keyVaultSecretsOfficer)
  scope: vault
  properties: {
    roleDefinitionId: roles.keyVaultSecretsOfficer
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}

// Import and renew the wildcard certificate.
resource operatorCertificatesOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (hasOperator) {
  name: guid(vault.id, operatorPrincipalId, roles.keyVaultCertificatesOfficer)
  scope: vault
  properties: {
    roleDefinitionId: roles.keyVaultCertificatesOfficer
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}

// Read the tables in the portal's Storage browser (shared keys are off, so it signs in with Entra ID).
resource operatorTableReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (hasOperator) {
  name: guid(storage.id, operatorPrincipalId, roles.storageTableDataReader)
  scope: storage
  properties: {
    roleDefinitionId: roles.storageTableDataReader
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}

// Peek dead-lettered messages in the portal's Service Bus Explorer.
resource operatorQueueReceiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (hasOperator) {
  name: guid(namespace.id, operatorPrincipalId, roles.serviceBusDataReceiver)
  scope: namespace
  properties: {
    roleDefinitionId: roles.serviceBusDataReceiver
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}
