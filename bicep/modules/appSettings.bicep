metadata name = 'Supafana app settings'
metadata description = 'Writes the Function App\'s app settings (the whole set: settings not listed are removed). The list itself lives in main.bicep, next to the contract test that compares it with lib/config.ts.'

@description('Required. Name of the Function App.')
param functionAppName string

@description('Required. App settings: name -> value. Secrets are Key Vault references, never values.')
param appSettings object

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  properties: appSettings
}

@description('The names of the settings written.')
output names array = objectKeys(appSettings)
