// The peer of bench/peer_oidc.py: panva's oidc-provider (OpenID Certified) in one Node
// process with its in-memory store, configured like Consentry where it matters
// (confidential client with client_secret_basic, refresh token rotation, introspection).
// It mints one access token and a pool of single-use refresh tokens, prints them as one
// JSON line, then serves until killed.
//
//   node peer_oidc.mjs PORT CLIENT_SECRET REFRESH_TOKENS   (run from the folder where
//   oidc-provider is installed)
import Provider from 'oidc-provider';

const [port, secret, refreshCount] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const clientId = 'bench-calendar';

// oidc-provider's own quick-start memory adapter is an LRU of 1,000 entries, too small
// for the refresh token pool: an unbounded Map of the same shape (expiry honoured).
const store = new Map();
class MapAdapter {
  constructor(model) { this.model = model; }

  key(id) { return `${this.model}:${id}`; }

  async upsert(id, payload, expiresIn) {
    const expires = expiresIn ? Date.now() + expiresIn * 1000 : Infinity;
    store.set(this.key(id), { payload, expires });
  }

  async find(id) {
    const entry = store.get(this.key(id));
    if (!entry) return undefined;
    if (entry.expires <= Date.now()) { store.delete(this.key(id)); return undefined; }
    return entry.payload;
  }

  async findByUid(uid) {
    for (const [key, entry] of store) {
      if (key.startsWith(`${this.model}:`) && entry.payload.uid === uid) return entry.payload;
    }
    return undefined;
  }

  async findByUserCode(userCode) {
    for (const [key, entry] of store) {
      if (key.startsWith(`${this.model}:`) && entry.payload.userCode === userCode) return entry.payload;
    }
    return undefined;
  }

  async consume(id) {
    const entry = store.get(this.key(id));
    if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) { store.delete(this.key(id)); }

  async revokeByGrantId(grantId) {
    for (const [key, entry] of store) {
      if (entry.payload.grantId === grantId) store.delete(key);
    }
  }
}

const provider = new Provider(issuer, {
  adapter: MapAdapter,
  clients: [{
    client_id: clientId,
    client_secret: secret,
    redirect_uris: ['https://calendar.example/callback'],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  features: {
    devInteractions: { enabled: false },
    introspection: { enabled: true },
    userinfo: { enabled: true },
  },
  rotateRefreshToken: true,
  issueRefreshToken: async () => true,
  scopes: ['openid', 'profile', 'offline_access'],
  claims: { openid: ['sub'], profile: ['name', 'picture'] },
  ttl: { AccessToken: 6 * 3600, RefreshToken: 90 * 24 * 3600, IdToken: 3600, Grant: 90 * 24 * 3600 },
  findAccount: async (ctx, id) => ({
    accountId: id,
    claims: async () => ({ sub: id, name: 'Person 0', picture: 'https://pics.example/0.png' }),
  }),
});
provider.proxy = false;

const client = await provider.Client.find(clientId);
const grant = new provider.Grant({ accountId: 'person-0', clientId });
grant.addOIDCScope('openid profile offline_access');
const grantId = await grant.save();
const authTime = Math.floor(Date.now() / 1000);
const accessToken = await new provider.AccessToken({
  accountId: 'person-0', client, grantId, scope: 'openid profile', gty: 'authorization_code',
}).save();
const refreshTokens = [];
for (let i = 0; i < Number(refreshCount); i += 1) {
  refreshTokens.push(await new provider.RefreshToken({
    accountId: 'person-0', client, grantId, authTime,
    scope: 'openid profile offline_access', gty: 'authorization_code',
  }).save());
}

provider.listen(Number(port), '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({
    client_id: clientId, access_token: accessToken, refresh_tokens: refreshTokens,
  })}\n`);
});
