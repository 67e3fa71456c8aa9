metadata name = 'Supafana Grafana host'
metadata description = 'One Grafana + Prometheus VM for one Supabase project: a NIC without public IP in the Grafana subnet, the VM, its OS disk and a separate data disk for /data, all tagged supafana-ref=<ref>. Published as a template spec version and deployed by the provisioning function (deployment grafana-<ref>).'

@description('Required. The Supabase project ref this host serves: 20 lower-case letters.')
@minLength(20)
@maxLength(20)
param projectRef string

@description('Optional. VM name; also the prefix of the NIC and disk names.')
@minLength(1)
@maxLength(64)
param vmName string = 'grafana-${projectRef}'

@description('Optional. Azure region.')
param location string = resourceGroup().location

// Standard_B2s (2 burstable vCPUs, 4 GiB): Prometheus scraping one project's metrics endpoint every
// 60 s holds a few thousand series in well under 1 GiB, Grafana needs about 200 MiB, and the rest is
// headroom for TSDB compaction, dashboard queries and container image pulls. The 2 GiB sizes
// (B1ms) leave too little for compaction next to Grafana and risk the OOM killer; the load is
// mostly idle, which is what burstable credits are for.
@description('Optional. VM size.')
param vmSize string = 'Standard_B2s'

@description('Required. Resource id of the Grafana subnet (no public IPs; inbound only from the gateway).')
param subnetId string

// Azure caps customData at 64 KiB after base64 encoding, i.e. about 48 KiB of cloud-init text.
@description('Required. The whole cloud-init document (raw text, #cloud-config). It carries the Grafana admin password and the project\'s service key file, so it is secure; the template base64-encodes it.')
@secure()
param cloudInit string

@description('Required. SSH public key for break-glass access (password authentication is disabled; inbound SSH is closed by the NSG).')
param adminSshPublicKey string

@description('Optional. Admin user name.')
param adminUsername string = 'supafana'

@description('Optional. Size of the data disk mounted at /data (Grafana and Prometheus data), in GiB.')
@minValue(4)
@maxValue(1024)
param dataDiskSizeGB int = 16

// Used only when the data disk does not exist yet (a heal after the disk was lost): the disk is
// then created as a copy of this snapshot instead of empty. The app passes it only when the disk is
// missing, because a disk's creationData cannot change once it exists: ARM refuses a PUT of an
// existing disk whose creationData differs, while a PUT with unchanged creationData (what every
// redeploy over an existing disk sends) leaves the disk and its data as they are.
@description('Optional. Resource id of a snapshot to create a missing data disk from; empty creates it empty.')
param dataDiskSnapshotId string = ''

@description('Optional. Managed disk type of the OS and data disks.')
@allowed([
  'Standard_LRS'
  'StandardSSD_LRS'
  'Premium_LRS'
])
param diskType string = 'StandardSSD_LRS'

@description('Optional. Extra tags; supafana-ref=<projectRef> is always added (the app finds and deletes a project\'s resources by it).')
param tags object = {}

// Bicep has no pattern constraint: stop the deployment when the ref is not ^[a-z]{20}$ (the app
// checks it before any I/O; this guards manual deployments). The failing branch is evaluated only
// when the ref is invalid, and its error message names the problem.
var refIsValid = length(projectRef) == 20 && empty(filter(
  range(0, length(projectRef)),
  i => !contains('abcdefghijklmnopqrstuvwxyz', substring(projectRef, i, 1))
))
var validRef = refIsValid ? projectRef : string(int('projectRef must match ^[a-z]{20}$'))

var hostTags = union(tags, {
  'supafana-ref': validRef
})

resource nic 'Microsoft.Network/networkInterfaces@2024-05-01' = {
  name: '${vmName}-nic'
  location: location
  tags: hostTags
  properties: {
    ipConfigurations: [
      {
        name: 'ipconfig1'
        properties: {
          privateIPAllocationMethod: 'Dynamic'
          subnet: {
            id: subnetId
          }
        }
      }
    ]
  }
}

// Declared on its own (not created through the VM) so it outlives the VM: Grafana and Prometheus
// data survive a VM re-create. The app deletes it explicitly on deprovision.
resource dataDisk 'Microsoft.Compute/disks@2024-03-02' = {
  name: '${vmName}-data'
  location: location
  tags: hostTags
  sku: {
    name: diskType
  }
  properties: {
    creationData: empty(dataDiskSnapshotId)
      ? {
          createOption: 'Empty'
        }
      : {
          createOption: 'Copy'
          sourceResourceId: dataDiskSnapshotId
        }
    diskSizeGB: dataDiskSizeGB
  }
}

resource vm 'Microsoft.Compute/virtualMachines@2024-07-01' = {
  name: vmName
  location: location
  tags: hostTags
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
      // Recreated from the image with the VM (cloud-init runs on a fresh OS disk); all state is on /data.
      osDisk: {
        name: '${vmName}-osdisk'
        createOption: 'FromImage'
        caching: 'ReadWrite'
        deleteOption: 'Delete'
        managedDisk: {
          storageAccountType: diskType
        }
      }
      dataDisks: [
        {
          lun: 0
          name: dataDisk.name
          createOption: 'Attach'
          caching: 'ReadOnly'
          deleteOption: 'Detach'
          managedDisk: {
            id: dataDisk.id
          }
        }
      ]
    }
    osProfile: {
      computerName: vmName
      adminUsername: adminUsername
      // customData (not userData): Azure never returns it through the API.
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

// Azure creates the OS disk with the VM and does not copy the VM's tags to it; tag it here so
// every resource of the project carries supafana-ref (deprovisioning and the orphan sweep use it).
resource osDisk 'Microsoft.Compute/disks@2024-03-02' existing = {
  name: '${vmName}-osdisk'
}

resource osDiskTags 'Microsoft.Resources/tags@2022-09-01' = {
  name: 'default'
  scope: osDisk
  properties: {
    tags: hostTags
  }
  dependsOn: [
    vm
  ]
}

@description('Private IPv4 address of the VM (the gateway proxies <ref>.<domain> to <ip>:3000).')
output privateIpAddress string = nic.properties.ipConfigurations[0].properties.privateIPAddress

@description('The VM name.')
output vmName string = vm.name
