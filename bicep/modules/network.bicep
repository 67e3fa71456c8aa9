metadata name = 'Supafana network'
metadata description = 'The VNet with the function-integration, gateway and Grafana subnets, their NSGs, and the NAT gateway that gives the private subnets outbound internet.'

@description('Required. Name prefix for the network resources, e.g. "supafana-dev".')
@minLength(3)
@maxLength(40)
param namePrefix string

@description('Optional. Azure region.')
param location string = resourceGroup().location

@description('Optional. Tags applied to every resource.')
param tags object = {}

@description('Optional. Address space of the VNet.')
param addressPrefix string = '10.40.0.0/16'

@description('Optional. Subnet for the Function App VNet integration (delegated to Microsoft.App/environments, as Flex Consumption requires).')
param functionsSubnetPrefix string = '10.40.0.0/24'

@description('Optional. Subnet of the nginx gateway VM (the only VM with a public IP).')
param gatewaySubnetPrefix string = '10.40.1.0/27'

@description('Optional. Subnet of the per-project Grafana VMs. A /22 holds about 1,000 projects.')
param grafanaSubnetPrefix string = '10.40.4.0/22'

@description('Optional. TCP port Grafana listens on in each Grafana VM (the gateway proxies to it).')
@minValue(1)
@maxValue(65535)
param grafanaPort int = 3000

// The private subnets have no public IPs; outbound internet (Supabase metrics, container images,
// SMTP for the Grafana VMs; Supabase, Stripe and Loops APIs for the functions) leaves through one NAT
// gateway with a static IP (Azure's implicit default outbound access is retired for new VNets).
resource natPublicIp 'Microsoft.Network/publicIPAddresses@2024-05-01' = {
  name: 'pip-${namePrefix}-nat'
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

resource natGateway 'Microsoft.Network/natGateways@2024-05-01' = {
  name: 'ng-${namePrefix}'
  location: location
  tags: tags
  sku: {
    name: 'Standard'
  }
  properties: {
    idleTimeoutInMinutes: 4
    publicIpAddresses: [
      {
        id: natPublicIp.id
      }
    ]
  }
}

// Functions: nothing may connect in; outbound is the platform default.
resource functionsNsg 'Microsoft.Network/networkSecurityGroups@2024-05-01' = {
  name: 'nsg-${namePrefix}-functions'
  location: location
  tags: tags
  properties: {
    securityRules: [
      {
        name: 'DenyAllInbound'
        properties: {
          priority: 4096
          direction: 'Inbound'
          access: 'Deny'
          protocol: '*'
          sourceAddressPrefix: '*'
          sourcePortRange: '*'
          destinationAddressPrefix: '*'
          destinationPortRange: '*'
        }
      }
    ]
  }
}

// Gateway: HTTPS (and HTTP for redirects) from the internet; nothing else in. No SSH: operators
// reach the VM through run command or the serial console (boot diagnostics are on).
resource gatewayNsg 'Microsoft.Network/networkSecurityGroups@2024-05-01' = {
  name: 'nsg-${namePrefix}-gateway'
  location: location
  tags: tags
  properties: {
    securityRules: [
      {
        name: 'AllowHttpsFromInternet'
        properties: {
          priority: 100
          direction: 'Inbound'
          access: 'Allow'
          protocol: 'Tcp'
          sourceAddressPrefix: 'Internet'
          sourcePortRange: '*'
          destinationAddressPrefix: gatewaySubnetPrefix
          destinationPortRanges: [
            '443'
            '80'
          ]
        }
      }
      {
        name: 'DenyAllInbound'
        properties: {
          priority: 4096
          direction: 'Inbound'
          access: 'Deny'
          protocol: '*'
          sourceAddressPrefix: '*'
          sourcePortRange: '*'
          destinationAddressPrefix: '*'
          destinationPortRange: '*'
        }
      }
    ]
  }
}

// Grafana VMs: inbound only from the gateway subnet on the Grafana port; outbound only to the
// internet, so a compromised host can reach neither the gateway nor another project's host.
resource grafanaNsg 'Microsoft.Network/networkSecurityGroups@2024-05-01' = {
  name: 'nsg-${namePrefix}-grafana'
  location: location
  tags: tags
  properties: {
    securityRules: [
      {
        name: 'AllowGrafanaFromGateway'
        properties: {
          priority: 100
          direction: 'Inbound'
          access: 'Allow'
          protocol: 'Tcp'
          sourceAddressPrefix: gatewaySubnetPrefix
          sourcePortRange: '*'
          destinationAddressPrefix: grafanaSubnetPrefix
          destinationPortRange: string(grafanaPort)
        }
      }
      {
        name: 'DenyAllInbound'
        properties: {
          priority: 4096
          direction: 'Inbound'
          access: 'Deny'
          protocol: '*'
          sourceAddressPrefix: '*'
          sourcePortRange: '*'
          destinationAddressPrefix: '*'
          destinationPortRange: '*'
        }
      }
      {
        name: 'AllowInternetOutbound'
        properties: {
          priority: 100
          direction: 'Outbound'
          access: 'Allow'
          protocol: '*'
          sourceAddressPrefix: grafanaSubnetPrefix
          sourcePortRange: '*'
          destinationAddressPrefix: 'Internet'
          destinationPortRange: '*'
        }
      }
      {
        name: 'DenyAllOtherOutbound'
        properties: {
          priority: 4096
          direction: 'Outbound'
          access: 'Deny'
          protocol: '*'
          sourceAddressPrefix: '*'
          sourcePortRange: '*'
          destinationAddressPrefix: '*'
          destinationPortRange: '*'
        }
      }
    ]
  }
}

resource vnet 'Microsoft.Network/virtualNetworks@2024-05-01' = {
  name: 'vnet-${namePrefix}'
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [
        addressPrefix
      ]
    }
    subnets: [
      {
        name: 'snet-functions'
        properties: {
          addressPrefix: functionsSubnetPrefix
          networkSecurityGroup: {
            id: functionsNsg.id
          }
          natGateway: {
            id: natGateway.id
          }
          delegations: [
            {
              name: 'flex-consumption'
              properties: {
                serviceName: 'Microsoft.App/environments'
              }
            }
          ]
          defaultOutboundAccess: false
        }
      }
      {
        name: 'snet-gateway'
        properties: {
          addressPrefix: gatewaySubnetPrefix
          networkSecurityGroup: {
            id: gatewayNsg.id
          }
          defaultOutboundAccess: false
        }
      }
      {
        name: 'snet-grafana'
        properties: {
          addressPrefix: grafanaSubnetPrefix
          networkSecurityGroup: {
            id: grafanaNsg.id
          }
          natGateway: {
            id: natGateway.id
          }
          defaultOutboundAccess: false
        }
      }
    ]
  }

  resource functionsSubnet 'subnets' existing = {
    name: 'snet-functions'
  }

  resource gatewaySubnet 'subnets' existing = {
    name: 'snet-gateway'
  }

  resource grafanaSubnet 'subnets' existing = {
    name: 'snet-grafana'
  }
}

@description('The VNet resource id.')
output vnetId string = vnet.id

@description('The VNet name.')
output vnetName string = vnet.name

@description('Resource id of the function-integration subnet.')
output functionsSubnetId string = vnet::functionsSubnet.id

@description('Resource id of the gateway subnet.')
output gatewaySubnetId string = vnet::gatewaySubnet.id

@description('Resource id of the Grafana subnet (the template spec parameter subnetId).')
output grafanaSubnetId string = vnet::grafanaSubnet.id

@description('Name of the Grafana subnet (scope of the function identity\'s join permission).')
output grafanaSubnetName string = vnet::grafanaSubnet.name

@description('Static outbound IP of the functions and the Grafana VMs (for allow-lists).')
output natPublicIpAddress string = natPublicIp.properties.ipAddress
