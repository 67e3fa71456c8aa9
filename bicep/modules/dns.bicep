metadata name = 'Supafana public DNS zone'
metadata description = 'The public DNS zone for GRAFANA_DOMAIN. The app writes one A record per project (<ref> -> gateway IP); delegate the zone from its parent domain with the name servers output here.'

@description('Required. The Grafana domain, e.g. "grafana.example.com" (lower case).')
@minLength(4)
@maxLength(200)
param zoneName string

@description('Optional. Tags applied to the zone.')
param tags object = {}

resource zone 'Microsoft.Network/dnsZones@2018-05-01' = {
  name: zoneName
  location: 'global'
  tags: tags
  properties: {
    zoneType: 'Public'
  }
}

@description('The zone name (DNS_ZONE_NAME).')
output name string = zone.name

@description('The zone resource id.')
output resourceId string = zone.id

@description('Name servers to delegate the zone to (NS records at the parent domain).')
output nameServers array = zone.properties.nameServers
