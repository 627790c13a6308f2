"""Scripts shared by the sandbox tests and the end-to-end script tests."""

# Knock's default script for new Custom HTTP sources, as published (spec section 4).
KNOCK_DEFAULT_SCRIPT = """\
/**
 * Custom HTTP webhook verification.
 * Compares the X-Webhook-Secret header against the configured secret.
 * Customize this function to implement your own verification logic.
 */
async function verify({ headers, secret }) {
  if (!secret) { return false; }
  const signatureHeader = headers["x-webhook-secret"] ?? headers["X-Webhook-Secret"];
  if (!signatureHeader) { return false; }
  return signatureHeader === secret;
}
async function main({ headers, body, vars }) {
  const verified = await verify({ headers, secret: vars["CUSTOM_HTTP_SIGNING_SECRET"] });
  return { verified };
}
"""
