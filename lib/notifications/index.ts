/**
 * The one way transactional e-mail reaches a member: resolve their address from the org's
 * member list and honour their preference for that e-mail. What `ALWAYS_SENT` names is always
 * sent (the verification code, a failed host replacement).
 */
import { sendMail, type MailTemplate } from "../mail.js";
import type { Services } from "../services.js";
import { supabaseFor } from "../supabase/client.js";
import { ALWAYS_SENT, getPreferences, type PreferenceKey } from "./preferences.js";

export type NotifyOutcome = "sent" | "opted_out" | "no_email" | "not_a_member" | "no_template";

export interface NotifyUserRequest {
  org: string;
  userId: string;
  template: MailTemplate;
  data: Record<string, string | number>;
  /** Loops idempotency key: one e-mail per key, however often this is called. */
  idempotencyKey: string;
}

const preferenceOf = (template: MailTemplate): PreferenceKey | undefined =>
  (ALWAYS_SENT as readonly string[]).includes(template) ? undefined : (template as PreferenceKey);

/** Whether this member wants this e-mail (always true for the verification code). */
export async function wantsMail(
  services: Services,
  org: string,
  userId: string,
  template: MailTemplate,
): Promise<boolean> {
  const key = preferenceOf(template);
  if (!key) return true;
  return (await getPreferences(services, org, userId))[key];
}

/** E-mails a member of `org` by user id, if they have an address and want this e-mail. */
export async function notifyUser(
  services: Services,
  req: NotifyUserRequest,
): Promise<NotifyOutcome> {
  const member = (await supabaseFor(services, req.org).listMembers()).find(
    (m) => m.userId === req.userId,
  );
  if (!member) return "not_a_member";
  if (!member.email) return "no_email";
  if (!(await wantsMail(services, req.org, req.userId, req.template))) return "opted_out";
  return sendMail(services, req.template, member.email, req.data, req.idempotencyKey);
}

/**
 * E-mails an address that is not known by user id (e.g. the billing contact Stripe has). When
 * the address is an org member's, that member's preference applies; any other address has no
 * preference and is mailed.
 */
export async function notifyAddress(
  services: Services,
  req: Omit<NotifyUserRequest, "userId"> & { email: string },
): Promise<NotifyOutcome> {
  const key = preferenceOf(req.template);
  if (key) {
    const wanted = req.email.trim().toLowerCase();
    // Without the member list (Supabase unreachable, grant revoked) nobody can have opted out.
    const members = await supabaseFor(services, req.org)
      .listMembers()
      .catch(() => []);
    const member = members.find((m) => m.email?.trim().toLowerCase() === wanted);
    if (member && !(await wantsMail(services, req.org, member.userId, req.template)))
      return "opted_out";
  }
  return sendMail(services, req.template, req.email, req.data, req.idempotencyKey);
}
