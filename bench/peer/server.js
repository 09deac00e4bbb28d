// The peer for bench/side_by_side.py: node-oidc-provider 9 (OpenID certified), configured as a production
// IdP for machine-to-machine traffic — client_credentials, client_secret_basic, ES256-signed JWT access
// tokens (through a resource indicator: the provider's only way to issue JWT access tokens). Its memory
// adapter stores nothing for a JWT access token; OneCard's tokens stay introspectable and revocable.
// Usage: node server.js PORT CLIENT_ID CLIENT_SECRET
import { generateKeyPairSync } from "node:crypto";
import Provider from "oidc-provider";

const [port, clientId, clientSecret] = process.argv.slice(2);
const RESOURCE = "urn:onecard:bench";

function signingKey(kind, options, alg) {
  const { privateKey } = generateKeyPairSync(kind, options);
  return { ...privateKey.export({ format: "jwk" }), alg, use: "sig", kid: alg.toLowerCase() };
}

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      grant_types: ["client_credentials"],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: "client_secret_basic",
      scope: "realname:verify",
    },
  ],
  jwks: {
    keys: [
      signingKey("ec", { namedCurve: "P-256" }, "ES256"),
      signingKey("rsa", { modulusLength: 2048 }, "RS256"),
    ],
  },
  scopes: ["openid", "realname:verify"],
  features: {
    clientCredentials: { enabled: true },
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: "realname:verify",
        audience: RESOURCE,
        accessTokenTTL: 600,
        accessTokenFormat: "jwt",
        jwt: { sign: { alg: "ES256" } },
      }),
    },
  },
});
provider.proxy = false;
provider.listen(Number(port), "127.0.0.1", () => {
  process.stdout.write(`peer listening on ${port}\n`);
});
