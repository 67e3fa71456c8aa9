metadata name = 'Supafana gateway'
metadata description = 'The nginx gateway VM: the one public entry to every project\'s Grafana. Public IP, nginx installed by cloud-init, wildcard certificate fetched from Key Vault with the VM\'s managed identity.'

@description('Required. Name prefix, e.g. "supafana-dev".')
@minLength(3)
@maxLength(40)
param namePrefix string

@description('Optional. Azure region.')
param location string = resourceGroup().location

@description('Optional. Tags applied to every resource.')
param tags object = {}

@description('Required. Resource id of the gateway subnet.')
param subnetId string

// 2 GiB and a burstable vCPU: nginx proxying a few hundred Grafana hosts uses a fraction of it;
// the headroom is for package upgrades and the run-command agent.
@description('Optional. VM size of the gateway.')
param vmSize string = 'Standard_B1ms'

@description('Optional. Admin user name (SSH key only; inbound SSH is closed by the NSG).')
param adminUsername string = 'supafana'

@description('Required. SSH public key for break-glass access (password authentication is disabled).')
param adminSshPublicKey string

@description('Required. URI of the Key Vault that holds the wildcard certificate (https://<name>.vault.azure.net/).')
param keyVaultUri string

@description('Required. Name of the wildcard certificate in Key Vault (its secret has the same name).')
param certificateName string

@description('Optional. Managed disk type of the OS disk.')
@allowed([
  'Standard_LRS'
  'StandardSSD_LRS'
  'Premium_LRS'
])
param osDiskType string = 'StandardSSD_LRS'

var vmName = 'vm-${namePrefix}-gateway'

// The token audience for Key Vault in this cloud, e.g. https://vault.azure.net.
var keyVaultResource = 'https://${substring(environment().suffixes.keyvaultDns, 1)}'

// No secret in here: the certificate is read at boot (and every 15 minutes) from Key Vault.
// Azure fixes customData when the VM is created: to roll out a changed cloud-init, delete the VM
// (the public IP, the NIC and therefore every DNS record survive), deploy again, and have the
// gateway function push the routing configuration again (docs/deploy.md, "Gateway").
var cloudInit = replace(
  replace(
    replace(loadTextContent('../gateway/cloud-init.yaml'), '__KEY_VAULT_URI__', keyVaultUri),
    '__CERTIFICATE_NAME__',
    certificateName
  ),
  '__KEY_VAULT_RESOURCE__',
  keyVaultResource
)

resource publicIp 'Microsoft.Network/publicIPAddresses@2024-05-01' = {
  name: 'pip-${namePrefix}-gateway'
  location: location
  tags: tags
  sku: {
    name: 'Standard'
  }
  properties: {
    publicIPAllocationMethod: 'Static'
    publicIPAddressVersion: 'IPv4'
  }
}

resource nic 'Microsoft.Network/networkInterfaces@2024-05-01' = {
  name: '${vmName}-nic'
  location: location
  tags: tags
  properties: {
    ipConfigurations: [
      {
        name: 'ipconfig1'
        properties: {
          privateIPAllocationMethod: 'Dynamic'
          subnet: {
            id: subnetId
          }
          publicIPAddress: {
            id: publicIp.id
          }
        }
      }
    ]
  }
}

resource vm 'Microsoft.Compute/virtualMachines@2024-07-01' = {
  name: vmName
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    hardwareProfile: {
      vmSize: vmSize
    }
    securityProfile: {
      securityType: 'TrustedLaunch'
      uefiSettings: {
        secureBootEnabled: true
        vTpmEnabled: true
      }
    }
    storageProfile: {
      imageReference: {
        publisher: 'Canonical'
        offer: 'ubuntu-24_04-lts'
        sku: 'server'
        version: 'latest'
      }
      osDisk: {
        name: '${vmName}-osdisk'
        createOption: 'FromImage'
        caching: 'ReadWrite'
        deleteOption: 'Delete'
        managedDisk: {
          storageAccountType: osDiskType
        }
      }
    }
    osProfile: {
      computerName: 'gateway'
      adminUsername: adminUsername
      customData: base64(cloudInit)
      linuxConfiguration: {
        disablePasswordAuthentication: true
        provisionVMAgent: true
        ssh: {
          publicKeys: [
            {
              path: '/home/${adminUsername}/.ssh/authorized_keys'
              keyData: adminSshPublicKey
            }
          ]
        }
      }
    }
    networkProfile: {
      networkInterfaces: [
        {
          id: nic.id
          properties: {
            deleteOption: 'Detach'
          }
        }
      ]
    }
    diagnosticsProfile: {
      bootDiagnostics: {
        enabled: true
      }
    }
  }
}

@description('The gateway VM name (GATEWAY_VM_NAME).')
output vmName string = vm.name

@description('The gateway VM resource id.')
output vmId string = vm.id

@description('Principal id of the gateway VM\'s managed identity (reads the certificate).')
output principalId string = vm.identity.principalId

@description('The gateway\'s public IPv4 address (GATEWAY_PUBLIC_IP; every <ref> A record points here).')
output publicIpAddress string = publicIp.properties.ipAddress

@description('The gateway\'s private IPv4 address.')
output privateIpAddress string = nic.properties.ipConfigurations[0].properties.privateIPAddress
