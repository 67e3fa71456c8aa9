metadata name = 'Supafana Function App'
metadata description = 'The Function App on the Flex Consumption plan (Node 22, system-assigned identity, VNet integration). App settings are applied by appSettings.bicep after the identity\'s role assignments exist, so Key Vault references resolve on the first start.'

@description('Required. Function App name (globally unique; part of its default host name).')
@minLength(2)
@maxLength(60)
param name string

@description('Required. Flex Consumption plan name.')
param planName string

@description('Optional. Azure region (must offer Flex Consumption).')
param location string = resourceGroup().location

@description('Optional. Tags applied to every resource.')
param tags object = {}

@description('Required. Blob container URL the plan deploys the app package from.')
param deploymentContainerUrl string

@description('Required. Resource id of the subnet delegated to Microsoft.App/environments.')
param subnetId string

// Node 22 is the supported LTS on Azure Functions (20 is past end of life there); the code also
// runs on Node 20 for local development.
@description('Optional. Node.js major version of the Functions runtime.')
@allowed([
  '22'
])
param nodeVersion string = '22'

@description('Optional. Maximum instances the plan scales out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Optional. Memory per instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    publicNetworkAccess: 'Enabled'
    virtualNetworkSubnetId: subnetId
    keyVaultReferenceIdentity: 'SystemAssigned'
    siteConfig: {
      minTlsVersion: '1.2'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'SystemAssignedIdentity'
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'node'
        version: nodeVersion
      }
    }
  }
}

// Deployments authenticate with Entra ID (az login); no publishing passwords exist.
// `location` is not in the compiler's type of this resource (it warns BCP187), but ARM refuses the
// PUT without it ("LocationRequired"); bicep/lint-allowlist.txt records the warning.
resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  location: location
  properties: {
    allow: false
  }
}

resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  location: location
  properties: {
    allow: false
  }
}

@description('The Function App name.')
output name string = site.name

@description('The Function App resource id.')
output resourceId string = site.id

@description('The Function App\'s default host name.')
output defaultHostName string = site.properties.defaultHostName

@description('Principal id of the Function App\'s system-assigned identity.')
output principalId string = site.identity.principalId
