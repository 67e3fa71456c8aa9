export {
  renderGatewayConfig,
  gatewayConfigHash,
  normalizeRoutes,
  isValidRef,
  isValidIpv4,
  GatewayConfigError,
  DEFAULT_GRAFANA_PORT,
  type GatewayRoute,
  type GatewayRenderOptions,
  type GatewayPaths,
} from "./nginx.js";
export {
  renderSigninScript,
  signinScriptFileName,
  GATEWAY_SESSION_COOKIE,
  EXCHANGE_PATH,
  type SigninScriptOptions,
} from "./signin-njs.js";
export {
  renderGatewayPushScript,
  parseAppliedHash,
  APPLIED_MARKER,
  FAILED_MARKER,
  type GatewayPushOptions,
} from "./push-script.js";
