// The certified relying party of tests/test_openid_client.py: openid-client (panva, OpenID Certified) driven
// one JSON line at a time. Every protocol step is the library's own API — discovery, private_key_jwt, PAR,
// PKCE, DPoP, the grants, userinfo — so a passing test means that library accepts OneCard, not that our idea
// of the RFCs agrees with itself. The script keeps the client's state (PKCE verifier, nonce, tokens, DPoP
// key) between commands; the Python test plays the browser in between.
//
// In:  {"op": "...", ...arguments}                 one JSON object per line on stdin
// Out: {"ok": true, ...result} | {"ok": false, "error": {...}}   one line on stdout per command

import { createInterface } from "node:readline";

import * as client from "openid-client";

const state = {
  config: null, // openid-client Configuration
  signingKey: null, // the client's private_key_jwt key, also what it signs request objects (JAR) with
  dpop: null, // the DPoP handle (getDPoPHandle) for the key pair below
  dpopKeys: null,
  publicDpopJwk: null,
  pending: null, // the authorization request in flight: PKCE verifier, state, nonce
  tokens: null, // the last token endpoint response
  claims: null, // the ID token claims of the code exchange
};

// The client's private_key_jwt key: a private JWK (with kid and alg) from the test, imported with WebCrypto.
async function importPrivateKey(jwk) {
  const algorithm =
    jwk.kty === "EC"
      ? { name: "ECDSA", namedCurve: jwk.crv }
      : { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
  const { kid, alg, use, ...material } = jwk;
  const key = await crypto.subtle.importKey("jwk", material, algorithm, false, ["sign"]);
  return { key, kid };
}

async function clientAuthentication(args) {
  switch (args.auth) {
    case "private_key_jwt":
      state.signingKey = await importPrivateKey(args.private_jwk);
      return client.PrivateKeyJwt(state.signingKey);
    case "client_secret_basic":
      return client.ClientSecretBasic(args.client_secret);
    case "client_secret_post":
      return client.ClientSecretPost(args.client_secret);
    default:
      throw new TypeError(`unknown client authentication ${args.auth}`);
  }
}

function dpopOption(args) {
  // {"dpop": false} sends the request without a proof (a DPoP-bound token presented as Bearer).
  return args.dpop === false ? {} : { DPoP: state.dpop };
}

const commands = {
  // discovery() with the test's client: its id, metadata and authentication; a fresh DPoP key pair.
  async configure(args) {
    const metadata = { redirect_uris: [args.redirect_uri], ...(args.metadata ?? {}) };
    state.config = await client.discovery(
      new URL(args.issuer),
      args.client_id,
      metadata,
      await clientAuthentication(args),
      // The live server listens on plain http on 127.0.0.1; the library's HTTPS-only rule is lifted there.
      { execute: [client.allowInsecureRequests], timeout: 10 },
    );
    return commands.new_dpop_key(args);
  },

  async new_dpop_key(args) {
    state.dpopKeys = await client.randomDPoPKeyPair(args.dpop_alg ?? "ES256");
    state.dpop = client.getDPoPHandle(state.config, state.dpopKeys);
    state.publicDpopJwk = await crypto.subtle.exportKey("jwk", state.dpopKeys.publicKey);
    return { server: state.config.serverMetadata(), dpop_jwk: state.publicDpopJwk };
  },

  // PAR (RFC 9126) with PKCE S256 and a nonce; the authorization URL carries only client_id and request_uri.
  // {"par": false}: the plain front-channel request instead; {"jar": true}: a signed request object.
  async authorize(args) {
    const verifier = client.randomPKCECodeVerifier();
    const pending = { verifier, state: client.randomState(), nonce: client.randomNonce() };
    const parameters = {
      redirect_uri: args.redirect_uri,
      scope: args.scope,
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: "S256",
      state: pending.state,
      nonce: pending.nonce,
      ...(args.parameters ?? {}),
    };
    // JAR (RFC 9101): the parameters go into a request object signed with the client's key; with PAR the
    // request object is what is pushed (the library's documented way to combine the two).
    let url = args.jar
      ? await client.buildAuthorizationUrlWithJAR(state.config, parameters, state.signingKey)
      : client.buildAuthorizationUrl(state.config, parameters);
    if (args.par !== false) {
      const pushed = args.jar ? url.searchParams : parameters;
      url = await client.buildAuthorizationUrlWithPAR(state.config, pushed, dpopOption(args));
    }
    state.pending = pending;
    return { url: url.href };
  },

  // The callback URL the browser was sent to: the library checks state and iss (RFC 9207), then redeems the
  // code with the DPoP handle and validates the ID token (signature, nonce, issuer, audience).
  async callback(args) {
    const tokens = await client.authorizationCodeGrant(
      state.config,
      new URL(args.url),
      {
        pkceCodeVerifier: state.pending.verifier,
        expectedState: state.pending.state,
        expectedNonce: state.pending.nonce,
      },
      undefined,
      dpopOption(args),
    );
    state.tokens = tokens;
    state.claims = tokens.claims() ?? null;
    return { tokens: { ...tokens }, claims: state.claims };
  },

  async userinfo(args) {
    const token = args.access_token ?? state.tokens.access_token;
    const sub = state.claims ? state.claims.sub : client.skipSubjectCheck;
    return { userinfo: await client.fetchUserInfo(state.config, token, sub, dpopOption(args)) };
  },

  async resource(args) {
    const token = args.access_token ?? state.tokens.access_token;
    const response = await client.fetchProtectedResource(
      state.config,
      token,
      new URL(args.url),
      args.method ?? "GET",
      args.body,
      args.headers ? new Headers(args.headers) : undefined,
      dpopOption(args),
    );
    const text = await response.text();
    return {
      status: response.status,
      www_authenticate: response.headers.get("www-authenticate"),
      body: text,
    };
  },

  async refresh(args) {
    const token = args.refresh_token ?? state.tokens.refresh_token;
    const tokens = await client.refreshTokenGrant(state.config, token, args.parameters, dpopOption(args));
    state.tokens = tokens;
    return { tokens: { ...tokens } };
  },

  async client_credentials(args) {
    const tokens = await client.clientCredentialsGrant(
      state.config,
      { scope: args.scope },
      dpopOption(args),
    );
    return { tokens: { ...tokens } };
  },

  async introspect(args) {
    return { introspection: await client.tokenIntrospection(state.config, args.token) };
  },
};

// What the test needs to tell one refusal from another: the library's error class and code, the server's
// OAuth error and status where there was one, and the WWW-Authenticate challenges of a refused resource call.
async function describe(error) {
  const described = {
    name: error?.name ?? "Error",
    code: error?.code ?? null,
    message: String(error?.message ?? error),
    cause: error?.cause instanceof Error ? String(error.cause.message) : null,
    error: typeof error?.error === "string" ? error.error : null,
    error_description: error?.error_description ?? null,
    status: error?.status ?? null,
  };
  if (error instanceof client.WWWAuthenticateChallengeError) {
    described.challenges = error.cause;
    const first = error.cause?.[0]?.parameters ?? {};
    described.error = first.error ?? null;
    described.error_description = first.error_description ?? null;
    // The library stops at the challenge and leaves the body unread: OneCard's JSON APIs put the error there.
    const text = await error.response.text().catch(() => "");
    try {
      described.body = JSON.parse(text);
    } catch {
      described.body = text;
    }
  }
  return described;
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (!line.trim()) continue;
  let reply;
  try {
    const { op, ...args } = JSON.parse(line);
    const command = commands[op];
    if (!command) throw new TypeError(`unknown op ${op}`);
    reply = { ok: true, ...(await command(args)) };
  } catch (error) {
    reply = { ok: false, error: await describe(error) };
  }
  process.stdout.write(JSON.stringify(reply) + "\n");
}
