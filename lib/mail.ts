/**
 * Transactional e-mail through Loops. Every message has an idempotency key, so a retried
 * consumer never sends the same e-mail twice.
 */
import type { Services } from "./services.js";

export type MailTemplate =
  | "verificationCode"
  | "instanceReady"
  | "trialEnding"
  | "paymentFailed"
  | "instanceDeleted"
  | "instanceFailed";

function templateId(services: Services, template: MailTemplate): string | undefined {
  const c = services.config;
  switch (template) {
    case "verificationCode":
      return c.LOOPS_TX_VERIFICATION_CODE;
    case "instanceReady":
      return c.LOOPS_TX_INSTANCE_READY;
    case "trialEnding":
      return c.LOOPS_TX_TRIAL_ENDING;
    case "paymentFailed":
      return c.LOOPS_TX_PAYMENT_FAILED;
    case "instanceDeleted":
      return c.LOOPS_TX_INSTANCE_DELETED;
    case "instanceFailed":
      return c.LOOPS_TX_INSTANCE_FAILED || undefined;
  }
}

async function loops(services: Services) {
  return services.memo("loops", async () => {
    const { LoopsClient } = await import("loops");
    const client = new LoopsClient(services.config.LOOPS_API_KEY);
    client.apiRoot = `${services.config.LOOPS_API_URL}/`;
    return client;
  });
}

export async function sendMail(
  services: Services,
  template: MailTemplate,
  to: string,
  data: Record<string, string | number>,
  idempotencyKey: string,
): Promise<"sent" | "no_template"> {
  const transactionalId = templateId(services, template);
  if (!transactionalId) return "no_template";
  const client = await loops(services);
  await client.sendTransactionalEmail({
    transactionalId,
    email: to,
    dataVariables: data,
    headers: { "Idempotency-Key": idempotencyKey.slice(0, 100) },
  });
  return "sent";
}
