/** What the screens read and change, as TanStack Query keys and functions over the typed client. */
import { QueryClient } from "@tanstack/react-query";

import { api, ApiError, call, type Instance, type ProjectList } from "./api/client";

export function createQueryClient(): QueryClient {
  return new QueryClient({
    defaultOptions: {
      queries: {
        // A 4xx will not change by asking again; a network blip might.
        retry: (count, err) => !(err instanceof ApiError && err.status > 0) && count < 2,
        staleTime: 30_000,
      },
      mutations: { retry: false },
    },
  });
}

export const keys = {
  me: ["me"] as const,
  members: ["members"] as const,
  projects: ["projects"] as const,
  instance: (ref: string) => ["instance", ref] as const,
  billing: ["billing"] as const,
  alerts: (ref: string) => ["alerts", ref] as const,
  recipients: (ref: string) => ["recipients", ref] as const,
  notifications: ["notifications"] as const,
};

export const getMe = () => call(() => api.GET("/api/me"));
export const getMembers = () => call(() => api.GET("/api/org/members"));
export const getBilling = () => call(() => api.GET("/api/billing"));

/** The project list; each project's instance also seeds that instance's own (poll) query. */
export async function getProjects(client: QueryClient): Promise<ProjectList> {
  const list = await call(() => api.GET("/api/projects"));
  for (const p of list.projects) client.setQueryData(keys.instance(p.ref), p.instance);
  return list;
}

export const getInstance = (ref: string): Promise<Instance> =>
  call(() => api.GET("/api/projects/{ref}/grafana", { params: { path: { ref } } }));

export const provision = (ref: string) =>
  call(() => api.PUT("/api/projects/{ref}/grafana", { params: { path: { ref } } }));

export const deprovision = (ref: string) =>
  call(() => api.DELETE("/api/projects/{ref}/grafana", { params: { path: { ref } } }));

export const sendCode = (userId: string) =>
  call(() => api.POST("/api/me/verification", { body: { userId } }));

export const confirmCode = (userId: string, code: string) =>
  call(() => api.POST("/api/me/verification/confirm", { body: { userId, code } }));

export const startCheckout = () => call(() => api.POST("/api/billing/checkout", { body: {} }));
export const openPortal = () => call(() => api.POST("/api/billing/portal", { body: {} }));

export const signOut = () => call(() => api.POST("/api/auth/logout"));
