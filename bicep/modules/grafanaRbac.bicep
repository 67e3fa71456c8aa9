metadata name = 'Supafana Grafana resource group role assignment'
metadata description = 'Lets the function identity manage Grafana hosts (template-spec deployments, VMs, NICs, disks) in the Grafana resource group, and nothing outside it.'

@description('Required. Principal id of the Function App\'s system-assigned identity.')
param functionPrincipalId string

@description('Required. Role definition id of the custom "Grafana hosts" role.')
param grafanaHostsRoleId string

resource functionGrafanaHosts 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, functionPrincipalId, grafanaHostsRoleId)
  properties: {
    roleDefinitionId: grafanaHostsRoleId
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Supafana: provision and deprovision Grafana hosts.'
  }
}
