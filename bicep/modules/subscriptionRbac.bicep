metadata name = 'Supafana subscription role assignment'
metadata description = 'The one subscription-level assignment of the function identity: reading the status of Compute and Network long-running operations (see roles.bicep).'

targetScope = 'subscription'

@description('Required. Principal id of the Function App\'s system-assigned identity.')
param functionPrincipalId string

@description('Required. Role definition id of the custom "operation status reader" role.')
param operationStatusReaderRoleId string

resource functionOperationStatus 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(subscription().id, functionPrincipalId, operationStatusReaderRoleId)
  properties: {
    roleDefinitionId: operationStatusReaderRoleId
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Supafana: poll Compute and Network long-running operations.'
  }
}
