/**
 * The alerts, alert recipients and e-mail preference routes, typed by hand in the shape that
 * openapi-typescript generates (`paths`), so that the calls below read like those of the
 * generated client.
 *
 * TODO(api): once the route definitions of these paths are in `functions/all.ts`, run
 * `npm run gen:api`, delete `AlertPaths` and `alertsApi` here, and make the calls use `api` from
 * `./client` (the paths are the same, so only the client changes); derive the types below with
 * `Ok<...>` as `./client` does.
 */
import createClient from "openapi-fetch";

import { call, type ErrorBody } from "./client";

export interface ConfigVersion {
  desired: number;
  /** null until the host has applied any configuration. */
  applied: number | null;
}

export interface AlertParam {
  name: string;
  label: string;
  unit: string;
  value: number;
  default: number;
  min: number;
  max: number;
  step: number;
}

export interface Alert {
  id: string;
  title: string;
  description: string;
  enabled: boolean;
  params: AlertParam[];
}

export interface AlertSettings {
  ref: string;
  alerts: Alert[];
  configVersion: ConfigVersion;
  lastConfigError: string | null;
  canEdit: boolean;
}

export interface AlertPatch {
  alerts: Record<string, { enabled?: boolean; params?: Record<string, number> }>;
}

export interface Recipient {
  userId: string;
  email: string | null;
  name: string;
  role: string;
}

export interface RecipientMember extends Recipient {
  verified: boolean;
  recipient: boolean;
}

export interface Recipients {
  ref: string;
  recipients: Recipient[];
  members: RecipientMember[];
  configVersion: ConfigVersion;
  canEditOthers: boolean;
  me: string;
}

export type NotificationKey = "instanceReady" | "trialEnding" | "paymentFailed" | "instanceDeleted";

export interface Notifications {
  preferences: Partial<Record<NotificationKey, boolean>> & Record<string, boolean>;
  always: string[];
}

type Json<T> = { content: { "application/json": T } };
type Fail = Json<ErrorBody>;
type RefParams = {
  query?: never;
  header?: never;
  path: { ref: string };
  cookie?: never;
};
type NoParams = { query?: never; header?: never; path?: never; cookie?: never };

/** The paths as `schema.d.ts` will describe them. */
export interface AlertPaths {
  "/api/projects/{ref}/grafana/alerts": {
    parameters: RefParams;
    get: {
      parameters: RefParams;
      requestBody?: never;
      responses: { 200: Json<AlertSettings>; 401: Fail; 403: Fail; 404: Fail };
    };
    patch: {
      parameters: RefParams;
      requestBody: Json<AlertPatch>;
      responses: { 202: Json<AlertSettings>; 400: Fail; 401: Fail; 403: Fail; 404: Fail };
    };
  };
  "/api/projects/{ref}/grafana/recipients": {
    parameters: RefParams;
    get: {
      parameters: RefParams;
      requestBody?: never;
      responses: { 200: Json<Recipients>; 401: Fail; 403: Fail; 404: Fail };
    };
    put: {
      parameters: RefParams;
      requestBody: Json<{ userIds: string[] }>;
      responses: { 202: Json<Recipients>; 400: Fail; 401: Fail; 403: Fail; 404: Fail };
    };
  };
  "/api/me/notifications": {
    parameters: NoParams;
    get: {
      parameters: NoParams;
      requestBody?: never;
      responses: { 200: Json<Notifications>; 401: Fail; 403: Fail };
    };
    patch: {
      parameters: NoParams;
      requestBody: Json<{ preferences: Partial<Record<string, boolean>> }>;
      responses: { 200: Json<Notifications>; 400: Fail; 401: Fail; 403: Fail };
    };
  };
}

const alertsApi = createClient<AlertPaths>({ baseUrl: "", credentials: "same-origin" });

export const getAlerts = (ref: string) =>
  call(() => alertsApi.GET("/api/projects/{ref}/grafana/alerts", { params: { path: { ref } } }));

export const patchAlerts = (ref: string, body: AlertPatch) =>
  call(() =>
    alertsApi.PATCH("/api/projects/{ref}/grafana/alerts", { params: { path: { ref } }, body }),
  );

export const getRecipients = (ref: string) =>
  call(() =>
    alertsApi.GET("/api/projects/{ref}/grafana/recipients", { params: { path: { ref } } }),
  );

export const putRecipients = (ref: string, userIds: string[]) =>
  call(() =>
    alertsApi.PUT("/api/projects/{ref}/grafana/recipients", {
      params: { path: { ref } },
      body: { userIds },
    }),
  );

export const getNotifications = () => call(() => alertsApi.GET("/api/me/notifications"));

export const patchNotifications = (preferences: Partial<Record<string, boolean>>) =>
  call(() => alertsApi.PATCH("/api/me/notifications", { body: { preferences } }));
