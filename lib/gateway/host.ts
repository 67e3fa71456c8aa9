/**
 * The port that says where nginx and the Grafana sign-in live on the gateway host: in Azure the
 * gateway VM's paths (below); in tests a real nginx run out of a temp prefix on high ports. The
 * gateway consumer renders and pushes with it and never asks which host it is.
 */
import type { GatewayRenderOptions } from "./nginx.js";
import type { GatewayPushOptions } from "./push-script.js";

/** Paths on the gateway VM (bicep/gateway/cloud-init.yaml lays them out). */
export const GATEWAY_PATHS = {
  config: "/etc/nginx/nginx.conf",
  // Written by the gateway VM's certificate fetcher (bicep/gateway/cloud-init.yaml).
  certificate: "/etc/nginx/tls/fullchain.pem",
  certificateKey: "/etc/nginx/tls/privkey.pem",
  // The Grafana sign-in: njs modules (content-addressed, pushed with the config), the key set
  // (written by the gateway's key fetcher, 0640 root:www-data) and the burnt ticket ids.
  signinScriptDir: "/etc/nginx/supafana",
  signinKeys: "/etc/nginx/supafana-keys/grafana-session-keys.json",
  usedTickets: "/var/lib/supafana-gateway/used-tickets",
} as const;

export interface GatewaySigninPaths {
  /** Where the content-addressed njs modules go. */
  scriptDir: string;
  keysPath: string;
  usedTicketsDir: string;
  /** The njs dynamic module, when nginx does not load it from its default place. */
  njsModulePath?: string;
}

export interface GatewayHost {
  /** nginx render options of this host (certificate paths, ports, worker user, …). */
  render: Omit<GatewayRenderOptions, "domain" | "signin">;
  /** Where and how the pushed script installs the config. */
  push: Omit<GatewayPushOptions, "assets">;
  signin: GatewaySigninPaths;
}

/** What differs from the gateway VM on another host. */
export interface GatewayHostOptions {
  render?: Partial<GatewayHost["render"]>;
  push?: Partial<GatewayHost["push"]>;
  signin?: Partial<GatewaySigninPaths>;
}

/** The gateway VM, with what `opts` changes. */
export function gatewayHost(opts: GatewayHostOptions = {}): GatewayHost {
  return {
    render: {
      certificatePath: GATEWAY_PATHS.certificate,
      certificateKeyPath: GATEWAY_PATHS.certificateKey,
      ...opts.render,
    },
    push: { targetPath: GATEWAY_PATHS.config, ...opts.push },
    signin: {
      scriptDir: GATEWAY_PATHS.signinScriptDir,
      keysPath: GATEWAY_PATHS.signinKeys,
      usedTicketsDir: GATEWAY_PATHS.usedTickets,
      ...opts.signin,
    },
  };
}
