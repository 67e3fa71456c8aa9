/**
 * Transactional e-mail through Loops. Every message has an idempotency key, so a retried
 * consumer never sends the same e-mail twice.
 */
import type { Services } from "./services.js";

export type MailTemplate =
  "verificationCode" | "instanceReady" | "trialEnding" | "paymentFailed" | "instanceDeleted";

function templateId(services: Services, template: MailTemplate): string {
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
): Promise<void> {
  const client = await loops(services);
  await client.sendTransactionalEmail({
    transactionalId: templateId(services, template),
    email: to,
    dataVariables: data,
    headers: { "Idempotency-Key": idempotencyKey.slice(0, 100) },
  });
}
