metadata name = 'Supafana Service Bus'
metadata description = 'The Service Bus namespace and its queues, declared from bicep/queues.json (the same file the local emulator reads). Entra ID only: SAS keys are disabled.'

@description('Required. Namespace name (6-50 characters, globally unique).')
@minLength(6)
@maxLength(50)
param name string

@description('Optional. Azure region.')
param location string = resourceGroup().location

@description('Optional. Tags applied to every resource.')
param tags object = {}

// Sessions and duplicate detection need the Standard tier (Basic has neither).
@description('Optional. Namespace tier.')
@allowed([
  'Standard'
  'Premium'
])
param skuName string = 'Standard'

// The single definition of the queues, shared with the local Service Bus emulator.
var queueDefinitions = loadJsonContent('../queues.json').queues

resource namespace 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: skuName
    tier: skuName
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
  }
}

resource queues 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' = [
  for queue in queueDefinitions: {
    parent: namespace
    name: queue.name
    properties: {
      requiresSession: queue.requiresSession
      requiresDuplicateDetection: queue.requiresDuplicateDetection
      duplicateDetectionHistoryTimeWindow: queue.duplicateDetectionHistoryTimeWindow
      lockDuration: queue.lockDuration
      maxDeliveryCount: queue.maxDeliveryCount
      defaultMessageTimeToLive: queue.defaultMessageTimeToLive
      deadLetteringOnMessageExpiration: queue.deadLetteringOnMessageExpiration
      enablePartitioning: false
    }
  }
]

@description('The namespace name.')
output name string = namespace.name

@description('The namespace resource id.')
output resourceId string = namespace.id

@description('Host name of the namespace (ServiceBusConnection__fullyQualifiedNamespace).')
output fullyQualifiedNamespace string = split(replace(namespace.properties.serviceBusEndpoint, 'https://', ''), ':')[0]

@description('Queue names in declaration order.')
output queueNames array = [for queue in queueDefinitions: queue.name]

@description('Queue names keyed by queue name: referencing a key that is not in queues.json fails the deployment.')
output queueNamesByKey object = toObject(queueDefinitions, queue => queue.name, queue => queue.name)
