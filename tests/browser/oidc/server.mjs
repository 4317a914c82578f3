// A real OpenID provider for the gateway's SSO tests: the certified `oidc-provider`, on 127.0.0.1 only.
// Configured by one JSON argument: {"port", "host", "clients": [{client_id, client_secret, redirect_uris}],
// "users": {"<login>": {claims}}}. "host" (default 127.0.0.1) names it in the issuer URL: `localhost` puts it on
// another site than a gateway on 127.0.0.1, as in production; it listens on 127.0.0.1 whatever the name.
// Sign-in goes through the package's development interactions (a login form taking any password for a known
// login, then a consent form). Prints "ready <issuer>" once listening.
import Provider from "oidc-provider";

const config = JSON.parse(process.argv[2]);
const issuer = `http://${config.host ?? "127.0.0.1"}:${config.port}`;
const users = config.users;

const provider = new Provider(issuer, {
  clients: config.clients.map((c) => ({ ...c, grant_types: ["authorization_code"], response_types: ["code"] })),
  cookies: { keys: ["opsbus-test-oidc-cookie-key"] },
  claims: {
    openid: ["sub"],
    email: ["email", "preferred_username"],
    opsbus: ["opsbus_role", "opsbus_namespaces", "opsbus_clusters"],
  },
  scopes: ["openid", "email", "opsbus"],
  conformIdTokenClaims: false, // the role and scope ride in the ID token, where the gateway reads them
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  async findAccount(_ctx, id) {
    const claims = users[id];
    if (!claims) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, ...claims }) };
  },
});
provider.listen(config.port, "127.0.0.1", () => console.log(`ready ${issuer}`));
