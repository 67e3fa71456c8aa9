/**
 * What the load sections share: a Supabase simulator whose rate limit a burst does not hit, the
 * settings that point the app at it, and the built app on the local host with its queue runners.
 */
import { startLocalApp, type LocalApp } from "../../local/app-host.js";
import { LOCAL } from "../../local/defaults.js";
import type { Platform } from "../../local/platform.js";
import { startSupabaseSimulator, type SupabaseSimulator } from "../../local/simulators/supabase.js";

/**
 * The real Management API allows 120 calls a minute per grant: a burst of hundreds of projects
 * would measure Supabase's limit, not the pipeline, so the simulator's is raised.
 */
export function startBurstSupabase(): Promise<SupabaseSimulator> {
  return startSupabaseSimulator({
    clientId: LOCAL.supabaseClientId,
    clientSecret: LOCAL.supabaseClientSecret,
    rateLimitPerMinute: 100_000,
  });
}

export const supabaseEnv = (supabase: SupabaseSimulator) => ({
  SUPABASE_API_URL: supabase.url,
  SUPABASE_CLIENT_ID: LOCAL.supabaseClientId,
  SUPABASE_CLIENT_SECRET: LOCAL.supabaseClientSecret,
});

/** The built `dist/` on the local host, queues running, timers not; host errors are printed. */
export function startBenchApp(
  platform: Platform,
  log: (level: string, msg: string) => void = () => undefined,
): Promise<LocalApp> {
  return startLocalApp(platform, {
    port: 0,
    adminKey: LOCAL.adminKey,
    functionKey: LOCAL.functionKey,
    runQueues: true,
    runTimers: false,
    log: (level, msg) => {
      if (level === "error") console.error(`  host: ${msg}`);
      log(level, msg);
    },
  });
}
