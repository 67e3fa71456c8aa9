import { QueryClientProvider } from "@tanstack/react-query";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";

import { setUnauthorizedHandler } from "./api/client";
import { App } from "./App";
import { createQueryClient } from "./data";
import { endSession } from "./session";
import "./styles.css";

setUnauthorizedHandler(() => {
  endSession("expired");
});

const root = document.getElementById("root");
if (root) {
  createRoot(root).render(
    <StrictMode>
      <QueryClientProvider client={createQueryClient()}>
        <App />
      </QueryClientProvider>
    </StrictMode>,
  );
}
