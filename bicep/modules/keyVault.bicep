metadata name = 'Supafana Key Vault'
metadata description = 'The Key Vault holding the app\'s secrets (referenced from app settings) and the gateway\'s wildcard certificate. RBAC authorization only; secret values are set by the operator, never by a deployment.'

@description('Required. Vault name (3-24 characters, globally unique).')
@minLength(3)
@maxLength(24)
param name string

@description('Optional. Azure region.')
param location string = resourceGroup().location

@description('Optional. Tags applied to every resource.')
param tags object = {}

// Purge protection keeps deleted secrets recoverable for the retention period; it also means a
// torn-down environment's vault name stays taken for that long (turn it off for throwaway environments).
@description('Optional. Enable purge protection (cannot be turned off again once on).')
param enablePurgeProtection bool = true

@description('Optional. Days a deleted vault or secret stays recoverable.')
@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int = 90

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    enablePurgeProtection: enablePurgeProtection ? true : null
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

@description('The vault name.')
output name string = vault.name

@description('The vault resource id.')
output resourceId string = vault.id

@description('The vault URI, with a trailing slash (https://<name>.vault.azure.net/).')
output vaultUri string = vault.properties.vaultUri
