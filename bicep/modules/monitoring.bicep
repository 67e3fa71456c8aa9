metadata name = 'Supafana monitoring'
metadata description = 'Log Analytics, workspace-based Application Insights (Entra ID ingestion only) and the operator alerts: dead letters on either queue, function failure rate, and orphaned Azure resources found by the reconciler.'

@description('Required. Name prefix for the monitoring resources, e.g. "supafana-dev".')
@minLength(3)
@maxLength(40)
param namePrefix string

@description('Optional. Azure region.')
param location string = resourceGroup().location

@description('Optional. Tags applied to every resource.')
param tags object = {}

@description('Optional. Days Log Analytics keeps data.')
@minValue(30)
@maxValue(730)
param retentionInDays int = 30

@description('Required. Resource id of the Service Bus namespace (scope of the dead-letter alerts).')
param serviceBusNamespaceId string

@description('Required. The queue names to alert on when they hold dead-lettered messages.')
param queueNames array

@description('Optional. E-mail addresses that receive alert notifications. Empty: alerts show in the portal only.')
param alertEmailAddresses array = []

@description('Optional. Failure-rate alert: fire when more than this percentage of function executions fail in the window.')
@minValue(1)
@maxValue(100)
param failureRatePercent int = 5

@description('Optional. Failure-rate alert: ignore windows with fewer executions than this (a single failure is not a rate).')
@minValue(1)
param failureRateMinExecutions int = 10

@description('Optional. Failure-rate alert: fire also when at least this many exceptions are logged in the window.')
@minValue(1)
param exceptionCountThreshold int = 20

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-${namePrefix}'
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
    features: {
      enableLogAccessUsingOnlyResourcePermissions: true
    }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-${namePrefix}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    // Telemetry is accepted only with an Entra ID token (the function identity has Monitoring
    // Metrics Publisher on this component); the connection string alone cannot write data.
    DisableLocalAuth: true
    IngestionMode: 'LogAnalytics'
    publicNetworkAccessForIngestion: 'Enabled'
    publicNetworkAccessForQuery: 'Enabled'
  }
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmailAddresses)) {
  name: 'ag-${namePrefix}-operators'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'supafana'
    enabled: true
    emailReceivers: [
      for (address, i) in alertEmailAddresses: {
        name: 'operator-${i}'
        emailAddress: address
        useCommonAlertSchema: true
      }
    ]
  }
}

var metricAlertActions = empty(alertEmailAddresses)
  ? []
  : [
      {
        actionGroupId: actionGroup.id
      }
    ]
var logAlertActions = {
  actionGroups: empty(alertEmailAddresses) ? [] : [actionGroup.id]
}

// A dead-lettered message is an operation the app gave up on (the dead-letter consumer turns the
// instance Failed); an operator should look at every one.
resource deadLetterAlerts 'Microsoft.Insights/metricAlerts@2018-03-01' = [
  for queueName in queueNames: {
    name: 'alert-${namePrefix}-${queueName}-dead-letters'
    location: 'global'
    tags: tags
    properties: {
      description: 'Messages in the dead-letter queue of "${queueName}". See docs/deploy.md ("Dead letters").'
      severity: 2
      enabled: true
      scopes: [
        serviceBusNamespaceId
      ]
      evaluationFrequency: 'PT5M'
      windowSize: 'PT15M'
      autoMitigate: true
      criteria: {
        'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
        allOf: [
          {
            criterionType: 'StaticThresholdCriterion'
            name: 'DeadLettered'
            metricNamespace: 'Microsoft.ServiceBus/namespaces'
            metricName: 'DeadletteredMessages'
            dimensions: [
              {
                name: 'EntityName'
                operator: 'Include'
                values: [
                  queueName
                ]
              }
            ]
            operator: 'GreaterThan'
            threshold: 0
            timeAggregation: 'Average'
          }
        ]
      }
      actions: metricAlertActions
    }
  }
]

// Function executions are `requests` in Application Insights (HTTP, queue and timer alike).
var failureRateQuery = '''
let total = toscalar(requests | count);
let failed = toscalar(requests | where success == false | count);
let thrown = toscalar(exceptions | count);
print executions = total, failures = failed, exceptionCount = thrown
| where (executions >= __MIN_EXECUTIONS__ and failures * 100 > executions * __PERCENT__) or exceptionCount >= __EXCEPTIONS__
'''

resource failureRateAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-${namePrefix}-failure-rate'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Supafana: function failure rate'
    description: 'More than ${failureRatePercent}% of function executions failed (with at least ${failureRateMinExecutions} executions), or at least ${exceptionCountThreshold} exceptions, in 15 minutes.'
    severity: 2
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: replace(
            replace(
              replace(failureRateQuery, '__MIN_EXECUTIONS__', string(failureRateMinExecutions)),
              '__PERCENT__',
              string(failureRatePercent)
            ),
            '__EXCEPTIONS__',
            string(exceptionCountThreshold)
          )
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: logAlertActions
  }
}

// Fires when the reconciler found Azure resources tagged with a project ref that has no live
// instance. It logs "reconciler removed orphaned Azure resources" per such ref, and its report line
// (every run) counts orphanRefs / orphanDnsRecordsDeleted; any line that says "orphans" counts too.
var orphansQuery = '''
traces
| where message has_any ("orphans", "orphaned")
    or (message startswith "reconciler report" and message matches regex @"orphan(Refs|DnsRecordsDeleted)\W+[1-9]")
'''

resource orphansAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-${namePrefix}-orphans'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Supafana: reconciler found orphans'
    description: 'The reconciler found Azure resources tagged supafana-ref=<ref> with no live instance. See docs/deploy.md ("Orphans").'
    severity: 3
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT15M'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: orphansQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: logAlertActions
  }
}

@description('The Log Analytics workspace resource id.')
output workspaceId string = workspace.id

@description('The Application Insights resource id.')
output appInsightsId string = appInsights.id

@description('The Application Insights name.')
output appInsightsName string = appInsights.name

// Not a secret: it identifies the component, and ingestion requires an Entra ID token.
@description('The Application Insights connection string (APPLICATIONINSIGHTS_CONNECTION_STRING).')
output appInsightsConnectionString string = appInsights.properties.ConnectionString
