/**
 * Top-level parameters each simulated Stripe endpoint accepts (names as in the `stripe`
 * SDK's request parameter types). Anything else is rejected with `parameter_unknown`, as
 * Stripe does, so a misspelled parameter in the project's billing code fails in tests.
 */

const set = (names: string): ReadonlySet<string> => new Set(names.trim().split(/\s+/));

const PAGINATION = "limit starting_after ending_before expand";

export const ALLOWED_PARAMS = {
  customerCreate: set(
    "address balance business_name cash_balance description email expand individual_name invoice_prefix invoice_settings metadata name next_invoice_sequence payment_method phone preferred_locales shipping source tax tax_exempt tax_id_data test_clock validate",
  ),
  customerUpdate: set(
    "address balance business_name cash_balance default_source description email expand individual_name invoice_prefix invoice_settings metadata name next_invoice_sequence phone preferred_locales shipping source tax tax_exempt validate",
  ),
  expandOnly: set("expand"),
  checkoutCreate: set(
    "adaptive_pricing after_expiration allow_promotion_codes allowed_payment_method_types automatic_tax billing_address_collection branding_settings cancel_url client_reference_id consent_collection currency custom_fields custom_text customer customer_account customer_creation customer_email customer_update discounts excluded_payment_method_types expand expires_at integration_identifier invoice_creation line_items locale managed_payments metadata mode name_collection optional_items origin_context payment_intent_data payment_method_collection payment_method_configuration payment_method_data payment_method_options permissions phone_number_collection redirect_on_completion return_url saved_payment_method_options setup_intent_data shipping_address_collection shipping_options submit_type subscription_data success_url tax_id_collection ui_mode wallet_options",
  ),
  portalCreate: set(
    "after_expiration configuration customer customer_account expand flow_data locale on_behalf_of return_url",
  ),
  subscriptionUpdate: set(
    "add_invoice_items application_fee_percent automatic_tax billing_cycle_anchor billing_schedules billing_thresholds cancel_at cancel_at_period_end cancellation_details collection_method days_until_due default_payment_method default_source default_tax_rates description discounts expand invoice_settings items metadata off_session on_behalf_of pause_collection payment_behavior payment_settings pending_invoice_item_interval proration_behavior proration_date transfer_data trial_end trial_from_plan trial_settings",
  ),
  subscriptionList: set(
    `${PAGINATION} automatic_tax collection_method created current_period_end current_period_start customer customer_account plan price status test_clock`,
  ),
  invoicePreview: set(
    "automatic_tax currency customer customer_account customer_details discounts expand invoice_items issuer on_behalf_of preview_mode schedule schedule_details subscription subscription_details",
  ),
} as const;
