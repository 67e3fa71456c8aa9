metadata name = 'Supafana storage'
metadata description = 'The storage account: the app\'s tables (its whole state), the Functions host\'s blobs and the Flex Consumption deployment container. Identity-based access only: shared keys are off.'

@description('Required. Storage account name (3-24 lower-case letters and digits, globally unique).')
@minLength(3)
@maxLength(24)
param name string

@description('Optional. Azure region.')
param location string = resourceGroup().location

@description('Optional. Tags applied to every resource.')
param tags object = {}

@description('Optional. Replication. Standard_ZRS survives a zone outage where the region has zones.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param skuName string = 'Standard_LRS'

@description('Optional. Blob container the Flex Consumption plan deploys the app package from.')
param deploymentContainerName string = 'app-package'

// The app's tables: the same list as TABLE_NAMES in lib/storage/tables.ts (a test keeps them equal).
// They are declared here so the function identity never needs to create tables at run time.
var tableNames = [
  'installations'
  'sessions'
  'oauthStates'
  'verifications'
  'instances'
  'projectRefs'
  'stripeEvents'
  'gateway'
  'audit'
  'rateLimits'
  'deadLetters'
  'rollouts'
  'alertConfigs'
  'memberPreferences'
]

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [
  for tableName in tableNames: {
    parent: tableService
    name: tableName
  }
]

@description('The storage account name (AzureWebJobsStorage__accountName).')
output name string = account.name

@description('The storage account resource id.')
output resourceId string = account.id

@description('Table endpoint (StorageConnection__tableServiceUri).')
output tableEndpoint string = account.properties.primaryEndpoints.table

@description('Blob URL of the Flex Consumption deployment container.')
output deploymentContainerUrl string = '${account.properties.primaryEndpoints.blob}${deploymentContainer.name}'

@description('The tables declared here.')
output tableNames array = tableNames
