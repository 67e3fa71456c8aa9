/**
 * The alerts, alert recipients and e-mail preference calls, over the generated client: the types
 * are those of the routes' answers in `schema.d.ts`.
 */
import { api, call, type JsonBody, type Ok, type Op } from "./client";

export type AlertSettings = Ok<"/api/projects/{ref}/grafana/alerts", "get">;
export type Alert = AlertSettings["alerts"][number];
export type AlertParam = Alert["params"][number];
export type ConfigVersion = AlertSettings["configVersion"];
export type AlertPatch = JsonBody<Op<"/api/projects/{ref}/grafana/alerts", "patch">["requestBody"]>;

export type Recipients = Ok<"/api/projects/{ref}/grafana/recipients", "get">;
export type Recipient = Recipients["recipients"][number];
export type RecipientMember = Recipients["members"][number];

export type Notifications = Ok<"/api/me/notifications", "get">;
export type NotificationKey = keyof Notifications["preferences"];
export type NotificationPatch = JsonBody<
  Op<"/api/me/notifications", "patch">["requestBody"]
>["preferences"];

export const getAlerts = (ref: string) =>
  call(() => api.GET("/api/projects/{ref}/grafana/alerts", { params: { path: { ref } } }));

export const patchAlerts = (ref: string, body: AlertPatch) =>
  call(() => api.PATCH("/api/projects/{ref}/grafana/alerts", { params: { path: { ref } }, body }));

export const getRecipients = (ref: string) =>
  call(() => api.GET("/api/projects/{ref}/grafana/recipients", { params: { path: { ref } } }));

export const putRecipients = (ref: string, userIds: string[]) =>
  call(() =>
    api.PUT("/api/projects/{ref}/grafana/recipients", {
      params: { path: { ref } },
      body: { userIds },
    }),
  );

export const getNotifications = () => call(() => api.GET("/api/me/notifications"));

export const patchNotifications = (preferences: NotificationPatch) =>
  call(() => api.PATCH("/api/me/notifications", { body: { preferences } }));
