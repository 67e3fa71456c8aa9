/**
 * The port through which the app talks HTTP to the Grafana hosts (through the gateway): the
 * readiness probe and the Grafana admin API. In Azure it is `fetch` over HTTPS; the local
 * platform passes one that answers from its gateway stand-in.
 */
export interface GrafanaHostHttp {
  /** HTTP status of `GET url` (0 when unreachable or timed out). */
  probe(url: string): Promise<number>;
  /** `fetch` towards a Grafana host. */
  fetch: typeof fetch;
}

const PROBE_TIMEOUT_MS = 5_000;

export const grafanaHostsOverHttps: GrafanaHostHttp = {
  async probe(url) {
    try {
      const res = await fetch(url, {
        redirect: "manual",
        signal: AbortSignal.timeout(PROBE_TIMEOUT_MS),
      });
      await res.body?.cancel();
      return res.status;
    } catch {
      return 0;
    }
  },
  fetch: (input, init) => fetch(input, init),
};
