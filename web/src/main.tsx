import { QueryClientProvider } from "@tanstack/react-query";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";

import { getAlerts } from "./api/alerts";
import { setUnauthorizedHandler } from "./api/client";
import { App } from "./App";
import { createQueryClient, getBilling, getMe, getProjects, keys } from "./data";
import { alertsRef } from "./router";
import { endSession } from "./session";
import "./styles.css";

setUnauthorizedHandler(() => {
  endSession("expired");
});

const client = createQueryClient();
/** A failed early fetch shows on the page that reads it (its query keeps the error). */
const ignore = () => undefined;
// Ask for the page's data alongside "who am I", not after it: one round trip to a visible list.
client.query({ queryKey: keys.me, queryFn: getMe, retry: false }).catch(ignore);
if (window.location.pathname === "/projects")
  client.query({ queryKey: keys.projects, queryFn: () => getProjects(client) }).catch(ignore);
else if (window.location.pathname === "/billing")
  client.query({ queryKey: keys.billing, queryFn: getBilling }).catch(ignore);
else {
  const ref = alertsRef(window.location.pathname);
  if (ref)
    client.query({ queryKey: keys.alerts(ref), queryFn: () => getAlerts(ref) }).catch(ignore);
}

const root = document.getElementById("root");
if (root) {
  createRoot(root).render(
    <StrictMode>
      <QueryClientProvider client={client}>
        <App />
      </QueryClientProvider>
    </StrictMode>,
  );
}
