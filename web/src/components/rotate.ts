import { api, call } from "../api/client";

/** A new Grafana admin password for the project (the API returns it this once). */
export async function rotateOnce(ref: string): Promise<string> {
  const res = await call(() =>
    api.POST("/api/projects/{ref}/grafana/password", { params: { path: { ref } } }),
  );
  return res.password;
}
