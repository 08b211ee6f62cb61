// The local OpenID provider for `make run` and the tests (development only; never shipped).
//
// A real OpenID Connect provider (the `oidc-provider` library, OpenID Certified) on 127.0.0.1:
// authorization code flow with PKCE, ID tokens and JWT access tokens for the audience, both
// signed with the local issuer's key (.local/issuer/signing-key.pem), so the services verify
// them exactly as they verify `manage.py issue_token`'s. Its sign-in page asks for a user name
// and whether the person is support staff (the scope purchases:read-all); no password.
//
// Configured by the environment (devstack/oidc_provider.py sets it):
//   OIDC_PROVIDER_ISSUER   http://127.0.0.1:PORT (it listens there)
//   OIDC_PROVIDER_KEY      the signing key's PEM file;  OIDC_PROVIDER_KID  its key id
//   OIDC_PROVIDER_AUDIENCE the access tokens' `aud`;    OIDC_PROVIDER_CLIENTS  JSON list of
//   {client_id, client_secret, redirect_uris};          OIDC_PROVIDER_TOKEN_TTL_S (default 3600)
import { createPrivateKey, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import http from "node:http";

import Provider from "oidc-provider";

const READ_ALL = "purchases:read-all";
const RESOURCE = "urn:purchases:api";
// The services' rule for a userid (purchases_project/rules.py), so every name signs in usably.
const USERID = /^(?!\.{1,2}$)[A-Za-z0-9\-_.@:+~]{1,200}$/;

const env = process.env;
const issuer = new URL(env.OIDC_PROVIDER_ISSUER);
const audience = env.OIDC_PROVIDER_AUDIENCE || "purchases";
const ttl = Number(env.OIDC_PROVIDER_TOKEN_TTL_S || 3600);
const jwk = createPrivateKey(readFileSync(env.OIDC_PROVIDER_KEY)).export({ format: "jwk" });
const clients = JSON.parse(env.OIDC_PROVIDER_CLIENTS).map((c) => ({
  ...c,
  grant_types: ["authorization_code"],
  response_types: ["code"],
  token_endpoint_auth_method: "client_secret_basic",
  id_token_signed_response_alg: "ES256",
}));

const provider = new Provider(issuer.href.replace(/\/$/, ""), {
  clients,
  jwks: { keys: [{ ...jwk, kid: env.OIDC_PROVIDER_KID, alg: "ES256", use: "sig" }] },
  enabledJWA: { idTokenSigningAlgValues: ["ES256"] },
  cookies: { keys: [randomBytes(32).toString("hex")] },
  findAccount: async (ctx, id) => ({ accountId: id, claims: async () => ({ sub: id }) }),
  scopes: ["openid"],
  pkce: { required: () => true },
  ttl: { AccessToken: ttl, IdToken: ttl, Session: ttl, Grant: ttl, Interaction: 600 },
  features: {
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, indicator) => {
        if (indicator !== RESOURCE) throw new Provider.errors.InvalidTarget();
        return { scope: READ_ALL, audience, accessTokenFormat: "jwt", accessTokenTTL: ttl, jwt: { sign: { alg: "ES256" } } };
      },
    },
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  renderError: async (ctx, out) => {
    ctx.type = "html";
    ctx.body = page("Sign-in error", `<p>${escape(out.error)}: ${escape(out.error_description || "")}</p>`);
  },
});
provider.proxy = false;

function escape(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title, body) {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escape(title)}</title><link rel="icon" href="data:,"></head>
<body><main><h1>${escape(title)}</h1>${body}</main></body></html>`;
}

function signInForm(uid, client, error = "", username = "") {
  const alert = error ? `<p role="alert" id="error">${escape(error)}</p>` : "";
  return page(
    "Sign in (development)",
    `<p>Local development provider for ${escape(client)}: no password; any user name signs in.</p>${alert}
<form method="post" action="/interaction/${escape(uid)}/login">
<p><label for="username">User name</label>
<input id="username" name="username" required maxlength="200" autocomplete="username" value="${escape(username)}"
${error ? 'aria-invalid="true" aria-describedby="error"' : ""}></p>
<p><input type="checkbox" id="support" name="support" value="yes">
<label for="support">Support staff</label> (may read every customer's purchases)</p>
<p><button type="submit">Sign in</button></p>
</form>`,
  );
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 16384) throw new Error("form too large");
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString("utf8"));
}

function send(res, status, html) {
  res.writeHead(status, {
    "Content-Type": "text/html; charset=utf-8",
    "Content-Security-Policy": "default-src 'none'; img-src data:; form-action 'self' http://127.0.0.1:* http://localhost:*; base-uri 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
  });
  res.end(html);
}

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const client = details.params.client_id;
  if (req.method === "GET") return send(res, 200, signInForm(details.uid, client));
  const form = await readForm(req);
  const username = (form.get("username") || "").trim();
  if (!USERID.test(username)) {
    const why = "A user name is 1 to 200 letters, digits or -_.@:+~ characters.";
    return send(res, 400, signInForm(details.uid, client, why, username));
  }
  // The grant: the ID token's scope, and the resource with purchases:read-all for support staff
  // only (otherwise refused, so the provider does not ask again).
  const grant = new provider.Grant({ accountId: username, clientId: client });
  grant.addOIDCScope("openid");
  if (form.get("support") === "yes") grant.addResourceScope(RESOURCE, READ_ALL);
  else {
    grant.addResourceScope(RESOURCE, "");
    grant.rejectResourceScope(RESOURCE, READ_ALL);
  }
  const grantId = await grant.save();
  const result = { login: { accountId: username }, consent: { grantId } };
  return provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
}

const callback = provider.callback();
const server = http.createServer((req, res) => {
  const path = new URL(req.url, issuer).pathname;
  const route = /^\/interaction\/[^/]+(\/login)?$/.exec(path);
  if (route && (req.method === (route[1] ? "POST" : "GET"))) {
    interaction(req, res).catch((err) => {
      console.error(`interaction failed: ${err}`);
      if (!res.headersSent) send(res, 400, page("Sign-in error", `<p>${escape(err.message)}</p>`));
    });
  } else {
    callback(req, res);
  }
});
server.listen(Number(issuer.port), issuer.hostname, () => {
  console.log(`OpenID provider ${issuer.href} ready`);
});
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => server.close(() => process.exit(0)));
