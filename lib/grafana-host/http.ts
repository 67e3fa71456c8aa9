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

/**
 * The status of one request that is sent only for its status (the body is discarded): 0 when it
 * got no answer (unreachable, refused, timed out).
 */
export async function requestStatus(
  doFetch: typeof fetch,
  url: string,
  init: RequestInit & { timeoutMs: number },
): Promise<number> {
  const { timeoutMs, ...rest } = init;
  try {
    const res = await doFetch(url, {
      redirect: "manual",
      ...rest,
      signal: AbortSignal.timeout(timeoutMs),
    });
    await res.body?.cancel();
    return res.status;
  } catch {
    return 0;
  }
}

export const grafanaHostsOverHttps: GrafanaHostHttp = {
  probe: (url) => requestStatus(fetch, url, { timeoutMs: PROBE_TIMEOUT_MS }),
  fetch: (input, init) => fetch(input, init),
};
