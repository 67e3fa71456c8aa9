metadata name = 'Supafana custom roles'
metadata description = 'Narrow custom roles for the function identity where every built-in role is broader than what the app does.'

targetScope = 'subscription'

@description('Required. Environment name; part of each role\'s unique name.')
param environmentName string

@description('Required. Short unique token of the environment (keeps role names unique in the tenant).')
param resourceToken string

@description('Required. Resource id of the platform resource group (gateway VM, DNS zone, VNet, template spec).')
param platformResourceGroupId string

@description('Required. Resource id of the resource group that holds the Grafana VMs.')
param grafanaResourceGroupId string

var suffix = '(${environmentName}, ${resourceToken})'

// Grafana resource group. No built-in role fits: Contributor may create any resource type, and
// Virtual Machine Contributor lacks deployments while adding disk export, availability sets,
// storage-account reads and more. This role covers exactly what a Grafana host is made of (a
// template-spec deployment of a NIC, a VM and two disks, tagged) plus listing the group's resources
// for deprovisioning and the orphan sweep, and the daily incremental snapshots of the data disks
// (a lost data disk is restored from the newest). Disks and snapshots get read/write/delete only:
// no export (beginGetAccess), which would hand out a SAS URL to a project's data.
resource grafanaHosts 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, environmentName, resourceToken, 'supafana-grafana-hosts')
  properties: {
    roleName: 'Supafana Grafana hosts ${suffix}'
    description: 'Deploy, read and delete Grafana host VMs, NICs and disks (template-spec deployments) in the Grafana resource group.'
    type: 'CustomRole'
    assignableScopes: [
      grafanaResourceGroupId
    ]
    permissions: [
      {
        actions: [
          'Microsoft.Resources/subscriptions/resourceGroups/read'
          'Microsoft.Resources/subscriptions/resourceGroups/resources/read'
          'Microsoft.Resources/deployments/*'
          'Microsoft.Resources/tags/read'
          'Microsoft.Resources/tags/write'
          'Microsoft.Compute/virtualMachines/*'
          'Microsoft.Compute/disks/read'
          'Microsoft.Compute/disks/write'
          'Microsoft.Compute/disks/delete'
          'Microsoft.Compute/snapshots/read'
          'Microsoft.Compute/snapshots/write'
          'Microsoft.Compute/snapshots/delete'
          'Microsoft.Network/networkInterfaces/*'
        ]
        notActions: []
      }
    ]
  }
}

// Assigned on the Grafana subnet only: new NICs may join it, nothing else in the VNet changes.
resource subnetJoin 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, environmentName, resourceToken, 'supafana-subnet-join')
  properties: {
    roleName: 'Supafana subnet join ${suffix}'
    description: 'Attach network interfaces to the subnet this role is assigned on.'
    type: 'CustomRole'
    assignableScopes: [
      platformResourceGroupId
    ]
    permissions: [
      {
        actions: [
          'Microsoft.Network/virtualNetworks/subnets/read'
          'Microsoft.Network/virtualNetworks/subnets/join/action'
        ]
        notActions: []
      }
    ]
  }
}

// Assigned on the Grafana host template spec only (a deployment that links a template spec needs
// read on its version).
resource templateSpecReader 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, environmentName, resourceToken, 'supafana-template-spec-reader')
  properties: {
    roleName: 'Supafana template spec reader ${suffix}'
    description: 'Read the template spec (and its versions) this role is assigned on.'
    type: 'CustomRole'
    assignableScopes: [
      platformResourceGroupId
    ]
    permissions: [
      {
        actions: [
          'Microsoft.Resources/templateSpecs/read'
          'Microsoft.Resources/templateSpecs/versions/read'
        ]
        notActions: []
      }
    ]
  }
}

// Assigned on the gateway VM only. Virtual Machine Contributor would also allow deleting, resizing
// or re-imaging it.
resource gatewayRunCommand 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, environmentName, resourceToken, 'supafana-gateway-run-command')
  properties: {
    roleName: 'Supafana gateway run command ${suffix}'
    description: 'Read the VM this role is assigned on and run a command on it (pushes the nginx configuration).'
    type: 'CustomRole'
    assignableScopes: [
      platformResourceGroupId
    ]
    permissions: [
      {
        actions: [
          'Microsoft.Compute/virtualMachines/read'
          'Microsoft.Compute/virtualMachines/instanceView/read'
          'Microsoft.Compute/virtualMachines/runCommand/action'
        ]
        notActions: []
      }
    ]
  }
}

// Assigned on the DNS zone only. DNS Zone Contributor could also change NS, TXT, CAA and CNAME
// records (domain validation, delegation, takeover); the app only ever writes A records.
resource dnsARecords 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, environmentName, resourceToken, 'supafana-dns-a-records')
  properties: {
    roleName: 'Supafana DNS A records ${suffix}'
    description: 'Read the DNS zone this role is assigned on and create, update and delete its A records.'
    type: 'CustomRole'
    assignableScopes: [
      platformResourceGroupId
    ]
    permissions: [
      {
        actions: [
          'Microsoft.Network/dnszones/read'
          'Microsoft.Network/dnszones/recordsets/read'
          'Microsoft.Network/dnszones/A/read'
          'Microsoft.Network/dnszones/A/write'
          'Microsoft.Network/dnszones/A/delete'
        ]
        notActions: []
      }
    ]
  }
}

// Compute and Network report long-running operations (VM create/delete, run command, NIC delete)
// at subscription-level URLs (/subscriptions/<id>/providers/<ns>/locations/<region>/operations/<id>).
// Polling them needs these two reads at the subscription; they reveal only the status of an
// operation whose id the caller already holds, no resource.
resource operationStatusReader 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, environmentName, resourceToken, 'supafana-operation-status')
  properties: {
    roleName: 'Supafana operation status reader ${suffix}'
    description: 'Read the status of Compute and Network long-running operations.'
    type: 'CustomRole'
    assignableScopes: [
      subscription().id
    ]
    permissions: [
      {
        actions: [
          'Microsoft.Compute/locations/operations/read'
          'Microsoft.Network/locations/operations/read'
        ]
        notActions: []
      }
    ]
  }
}

@description('Role definition id: Grafana host lifecycle in the Grafana resource group.')
output grafanaHostsRoleId string = grafanaHosts.id

@description('Role definition id: join the Grafana subnet.')
output subnetJoinRoleId string = subnetJoin.id

@description('Role definition id: read the Grafana host template spec.')
output templateSpecReaderRoleId string = templateSpecReader.id

@description('Role definition id: run commands on the gateway VM.')
output gatewayRunCommandRoleId string = gatewayRunCommand.id

@description('Role definition id: A records in the Grafana DNS zone.')
output dnsARecordsRoleId string = dnsARecords.id

@description('Role definition id: long-running operation status.')
output operationStatusReaderRoleId string = operationStatusReader.id
