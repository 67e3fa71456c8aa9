metadata name = 'Supafana web app (one origin for the SPA and /api)'
metadata description = 'Azure Front Door Standard in front of both halves of the product: the built SPA in a blob container (cached at the edge, SPA fallback to index.html, security headers) and the Function App for /api/* (never cached). The browser sees one origin, so the session cookie stays host-only and SameSite=Lax and the CSRF check compares one Origin. See docs/deploy.md, "The web app".'

@description('Required. Prefix of resource names, e.g. "supafana-dev".')
param namePrefix string

@description('Required. Name of the storage account that holds the built SPA (3-24 lower-case letters and digits).')
@minLength(3)
@maxLength(24)
param storageAccountName string

@description('Optional. Azure region of the storage account (Front Door itself is global).')
param location string = resourceGroup().location

@description('Optional. Tags applied to every resource.')
param tags object = {}

@description('Required. Default host name of the Function App, e.g. func-supafana-dev-abc.azurewebsites.net.')
param functionAppHostName string

@description('Optional. Custom host name of the app, e.g. "app.example.com" (TLS by a Front Door managed certificate). Empty: the endpoint\'s *.azurefd.net name.')
param customHostName string = ''

@description('Optional. Content-Security-Policy of the SPA; the same policy the local host sends (local/web-static.ts).')
param contentSecurityPolicy string = 'default-src \'none\'; script-src \'self\'; style-src \'self\'; img-src \'self\' data:; font-src \'self\'; connect-src \'self\'; manifest-src \'self\'; form-action \'self\'; base-uri \'none\'; frame-ancestors \'none\''

var webContainerName = 'web'
var hasCustomHost = !empty(customHostName)

// ----- The built SPA ----------------------------------------------------------------------------

// Only the built SPA lives here (public by nature: it is what every browser downloads). Blobs are
// readable anonymously, the container cannot be listed, and writes need Entra ID (no keys).
resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: storageAccountName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: true
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource webContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: webContainerName
  properties: {
    publicAccess: 'Blob'
  }
}

// ----- Front Door -------------------------------------------------------------------------------

resource profile 'Microsoft.Cdn/profiles@2024-02-01' = {
  name: 'afd-${namePrefix}'
  location: 'global'
  tags: tags
  sku: {
    name: 'Standard_AzureFrontDoor'
  }
  properties: {
    originResponseTimeoutSeconds: 60
  }
}

resource endpoint 'Microsoft.Cdn/profiles/afdEndpoints@2024-02-01' = {
  parent: profile
  name: 'ep-${namePrefix}'
  location: 'global'
  tags: tags
  properties: {
    enabledState: 'Enabled'
  }
}

resource customDomain 'Microsoft.Cdn/profiles/customDomains@2024-02-01' = if (hasCustomHost) {
  parent: profile
  name: replace(customHostName, '.', '-')
  properties: {
    hostName: customHostName
    tlsSettings: {
      certificateType: 'ManagedCertificate'
      minimumTlsVersion: 'TLS12'
    }
  }
}

// One origin per group: health probes would only add traffic (and wake the function app).
resource webOrigins 'Microsoft.Cdn/profiles/originGroups@2024-02-01' = {
  parent: profile
  name: 'web'
  properties: {
    loadBalancingSettings: {
      sampleSize: 4
      successfulSamplesRequired: 3
      additionalLatencyInMilliseconds: 0
    }
    sessionAffinityState: 'Disabled'
  }
}

resource webOrigin 'Microsoft.Cdn/profiles/originGroups/origins@2024-02-01' = {
  parent: webOrigins
  name: 'blob'
  properties: {
    hostName: '${storage.name}.blob.${environment().suffixes.storage}'
    originHostHeader: '${storage.name}.blob.${environment().suffixes.storage}'
    httpPort: 80
    httpsPort: 443
    priority: 1
    weight: 1000
    enabledState: 'Enabled'
    enforceCertificateNameCheck: true
  }
}

resource apiOrigins 'Microsoft.Cdn/profiles/originGroups@2024-02-01' = {
  parent: profile
  name: 'api'
  properties: {
    loadBalancingSettings: {
      sampleSize: 4
      successfulSamplesRequired: 3
      additionalLatencyInMilliseconds: 0
    }
    sessionAffinityState: 'Disabled'
  }
}

resource apiOrigin 'Microsoft.Cdn/profiles/originGroups/origins@2024-02-01' = {
  parent: apiOrigins
  name: 'functions'
  properties: {
    hostName: functionAppHostName
    originHostHeader: functionAppHostName
    httpPort: 80
    httpsPort: 443
    priority: 1
    weight: 1000
    enabledState: 'Enabled'
    enforceCertificateNameCheck: true
  }
}

// The SPA's rules: app paths (no file extension) are index.html, never cached; every answer gets
// the security headers the local host sends.
resource spaRules 'Microsoft.Cdn/profiles/ruleSets@2024-02-01' = {
  parent: profile
  name: 'spa'
}

resource spaFallback 'Microsoft.Cdn/profiles/ruleSets/rules@2024-02-01' = {
  parent: spaRules
  name: 'AppPathsAreIndexHtml'
  properties: {
    order: 1
    matchProcessingBehavior: 'Continue'
    conditions: [
      {
        name: 'UrlFileExtension'
        parameters: {
          typeName: 'DeliveryRuleUrlFileExtensionMatchConditionParameters'
          operator: 'LessThan'
          negateCondition: false
          matchValues: [
            '1'
          ]
          transforms: []
        }
      }
    ]
    actions: [
      {
        name: 'UrlRewrite'
        parameters: {
          typeName: 'DeliveryRuleUrlRewriteActionParameters'
          sourcePattern: '/'
          destination: '/index.html'
          preserveUnmatchedPath: false
        }
      }
      {
        name: 'ModifyResponseHeader'
        parameters: {
          typeName: 'DeliveryRuleHeaderActionParameters'
          headerAction: 'Overwrite'
          headerName: 'Cache-Control'
          value: 'no-store'
        }
      }
    ]
  }
}

resource securityHeaders 'Microsoft.Cdn/profiles/ruleSets/rules@2024-02-01' = {
  parent: spaRules
  name: 'SecurityHeaders'
  properties: {
    order: 2
    matchProcessingBehavior: 'Continue'
    conditions: []
    actions: [
      {
        name: 'ModifyResponseHeader'
        parameters: {
          typeName: 'DeliveryRuleHeaderActionParameters'
          headerAction: 'Overwrite'
          headerName: 'Content-Security-Policy'
          value: contentSecurityPolicy
        }
      }
      {
        name: 'ModifyResponseHeader'
        parameters: {
          typeName: 'DeliveryRuleHeaderActionParameters'
          headerAction: 'Overwrite'
          headerName: 'X-Content-Type-Options'
          value: 'nosniff'
        }
      }
      {
        name: 'ModifyResponseHeader'
        parameters: {
          typeName: 'DeliveryRuleHeaderActionParameters'
          headerAction: 'Overwrite'
          headerName: 'Referrer-Policy'
          value: 'strict-origin-when-cross-origin'
        }
      }
      {
        name: 'ModifyResponseHeader'
        parameters: {
          typeName: 'DeliveryRuleHeaderActionParameters'
          headerAction: 'Overwrite'
          headerName: 'Strict-Transport-Security'
          value: 'max-age=31536000'
        }
      }
    ]
  }
}

// /api/* to the Function App, never cached (the more specific pattern wins over /*).
resource apiRoute 'Microsoft.Cdn/profiles/afdEndpoints/routes@2024-02-01' = {
  parent: endpoint
  name: 'api'
  properties: {
    originGroup: {
      id: apiOrigins.id
    }
    customDomains: hasCustomHost ? [{ id: customDomain.id }] : []
    patternsToMatch: [
      '/api/*'
    ]
    supportedProtocols: [
      'Http'
      'Https'
    ]
    httpsRedirect: 'Enabled'
    forwardingProtocol: 'HttpsOnly'
    linkToDefaultDomain: 'Enabled'
    enabledState: 'Enabled'
  }
  dependsOn: [
    apiOrigin
  ]
}

// Everything else is the SPA, cached at the edge by the blobs' Cache-Control (a year, immutable,
// for hashed assets; index.html is never cached), compressed by Front Door.
resource webRoute 'Microsoft.Cdn/profiles/afdEndpoints/routes@2024-02-01' = {
  parent: endpoint
  name: 'web'
  properties: {
    originGroup: {
      id: webOrigins.id
    }
    originPath: '/${webContainerName}'
    customDomains: hasCustomHost ? [{ id: customDomain.id }] : []
    ruleSets: [
      {
        id: spaRules.id
      }
    ]
    patternsToMatch: [
      '/*'
    ]
    supportedProtocols: [
      'Http'
      'Https'
    ]
    httpsRedirect: 'Enabled'
    forwardingProtocol: 'HttpsOnly'
    linkToDefaultDomain: 'Enabled'
    enabledState: 'Enabled'
    cacheConfiguration: {
      queryStringCachingBehavior: 'IgnoreQueryString'
      compressionSettings: {
        isCompressionEnabled: true
        contentTypesToCompress: [
          'text/html'
          'text/css'
          'text/javascript'
          'application/javascript'
          'application/json'
          'image/svg+xml'
        ]
      }
    }
  }
  dependsOn: [
    webOrigin
    spaFallback
    securityHeaders
    apiRoute
  ]
}

@description('Host name of the app: the custom host name, or the Front Door endpoint\'s.')
output hostName string = hasCustomHost ? customHostName : endpoint.properties.hostName

@description('The Front Door endpoint\'s own host name (*.azurefd.net): the CNAME target of a custom host name.')
output endpointHostName string = endpoint.properties.hostName

@description('Storage account that holds the built SPA.')
output storageAccountName string = storage.name

@description('Blob container the built SPA is uploaded to.')
output containerName string = webContainer.name

@description('Front Door profile name (for cache purges after a deployment).')
output profileName string = profile.name

@description('Front Door endpoint name (for cache purges after a deployment).')
output endpointName string = endpoint.name

@description('TXT record value that proves ownership of the custom host name (_dnsauth.<host>); empty without one.')
output customDomainValidationToken string = hasCustomHost ? customDomain!.properties.validationProperties.validationToken : ''
