metadata name = 'Supafana Grafana host template spec'
metadata description = 'The template spec that holds the versions of bicep/grafana-host.bicep. Versions are published with `az ts create` (see docs/deploy.md); declaring the spec here lets the function identity be granted read on exactly this spec.'

@description('Optional. Template spec name.')
@minLength(1)
@maxLength(90)
param name string = 'grafana-host'

@description('Optional. Azure region of the template spec.')
param location string = resourceGroup().location

@description('Optional. Tags applied to the template spec.')
param tags object = {}

resource spec 'Microsoft.Resources/templateSpecs@2022-02-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    displayName: 'Supafana Grafana host'
    description: 'One Grafana + Prometheus VM (NIC, VM, OS and data disk) for one Supabase project. Deployed by the provisioning function.'
  }
}

@description('The template spec name.')
output name string = spec.name

@description('The template spec resource id (append /versions/<version> for GRAFANA_TEMPLATE_SPEC_ID).')
output resourceId string = spec.id
