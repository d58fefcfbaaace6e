// A real OAuth 2.1 / OpenID Connect authorization server (npm oidc-provider) for the tests.
//
// Started by tests/oauth_support.py:  node tests/oauth/issuer.mjs '<config json>'
//   config: { resource, scopes: [..], grantScopes: [..], keyFile, accessTokenTTL, subject }
// It listens on 127.0.0.1 only, on a free port it picks itself, and writes the current private signing
// JWK to `keyFile` (so tests can forge tokens). Protocol lines go to stdout, each `@@issuer <json>`:
//   {"event":"ready","url":...,"kid":...}     after start-up and after `start`
//   {"event":"stopped"}                        after `stop`
//   {"event":"rotated","kid":...}              after `rotate`
// Commands arrive on stdin, one a line: `stop` (close the port and every connection: the issuer is
// down), `start` (listen again on the same port), `rotate` (sign with a new key from now on; the old
// key leaves the JWKS). Everything else (clients, grants, tokens) lives in oidc-provider's in-memory
// adapter, which is shared by every Provider in this process, so it survives stop/start and rotate.
// stdin closing (the test process died) ends this process: no orphans.
//
// Login and consent are automated: GET /interaction/:uid logs in `sub` (query, default config.subject)
// and grants the requested scopes that are in `grant` (query, space-separated; default
// config.grantScopes), rejecting the rest, then redirects back to the authorization endpoint.
//
// Access tokens: a JWT (aud = the resource) when the token request names a resource; opaque (for the
// same resource and scopes, found through introspection) when it does not.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as readline from 'node:readline';

import Provider from 'oidc-provider';
// oidc-provider's own in-memory adapter, one store for every Provider this process builds (each would
// otherwise get its own, and `rotate` would forget every client and token). A deep import: the version
// is pinned exactly in package.json.
import { createMemoryAdapter } from 'oidc-provider/lib/adapters/memory_adapter.js';

const config = JSON.parse(process.argv[2]);

// console.* of oidc-provider (its "you SHOULD change" notices) must not mix with the protocol lines.
for (const method of ['log', 'info', 'warn', 'debug']) {
  console[method] = (...args) => console.error(...args);
}

function say(message) {
  process.stdout.write(`@@issuer ${JSON.stringify(message)}\n`);
}

function newSigningKey() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: crypto.randomUUID(), alg: 'RS256', use: 'sig' };
}

function writeKey(jwk) {
  const temporary = `${config.keyFile}.tmp`;
  fs.writeFileSync(temporary, JSON.stringify(jwk), { encoding: 'utf8', mode: 0o600 });
  fs.renameSync(temporary, config.keyFile);
}

const adapter = createMemoryAdapter();
const cookieKeys = [crypto.randomBytes(32).toString('base64url')];
const resourceScopes = config.scopes.join(' ');

function buildProvider(issuer, signingKey) {
  const provider = new Provider(issuer, {
    adapter,
    jwks: { keys: [signingKey] },
    cookies: { keys: cookieKeys },
    findAccount: async (ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
    // The resource scopes are also listed here: clients (the MCP SDK's) register with a `scope`, which
    // must hold only scopes the issuer supports; it also puts them in the metadata's scopes_supported.
    scopes: ['openid', 'offline_access', ...config.scopes],
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      registration: { enabled: true, initialAccessToken: false },
      introspection: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // Nothing asked at the authorization endpoint: the configured resource.
        defaultResource: async (ctx, client, oneOf) => {
          if (oneOf) return oneOf.includes(config.resource) ? config.resource : oneOf[0];
          return config.resource;
        },
        // Any absolute URL is a resource server with the configured scopes (so a test can get a token
        // for another resource server). The token endpoint without `resource`: an opaque token.
        getResourceServerInfo: async (ctx) => ({
          scope: resourceScopes,
          accessTokenTTL: config.accessTokenTTL,
          accessTokenFormat: ctx.oidc.route === 'token' && !ctx.oidc.params.resource ? 'opaque' : 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        }),
        useGrantedResource: async () => true,
      },
    },
    issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
    // Errors shown to the end-user (no redirect possible) as JSON, so a failing test says why.
    renderError: async (ctx, out) => {
      ctx.type = 'json';
      ctx.body = out;
    },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    ttl: {
      AccessToken: config.accessTokenTTL,
      AuthorizationCode: 60,
      Interaction: 600,
      Session: 600,
      Grant: 3600,
      RefreshToken: 3600,
      IdToken: 600,
    },
  });

  provider.use(async (ctx, next) => {
    const match = /^\/interaction\/([^/]+)$/.exec(ctx.path);
    if (!match || ctx.method !== 'GET') {
      await next();
      return;
    }
    const interaction = await provider.interactionDetails(ctx.req, ctx.res);
    const { prompt, params, session } = interaction;
    const subject = typeof ctx.query.sub === 'string' && ctx.query.sub ? ctx.query.sub : config.subject;
    const granting = new Set(
      typeof ctx.query.grant === 'string' ? ctx.query.grant.split(' ').filter(Boolean) : config.grantScopes,
    );
    let result;
    if (prompt.name === 'login') {
      result = { login: { accountId: subject } };
    } else if (prompt.name === 'consent') {
      const grant = interaction.grantId
        ? await provider.Grant.find(interaction.grantId)
        : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
      const { details } = prompt;
      const oidcScopes = details.missingOIDCScope ?? [];
      const grantedOIDC = oidcScopes.filter((scope) => granting.has(scope) || !config.scopes.includes(scope));
      const refusedOIDC = oidcScopes.filter((scope) => !grantedOIDC.includes(scope));
      if (grantedOIDC.length) grant.addOIDCScope(grantedOIDC.join(' '));
      if (refusedOIDC.length) grant.rejectOIDCScope(refusedOIDC.join(' '));
      if (details.missingOIDCClaims) grant.addOIDCClaims(details.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(details.missingResourceScopes ?? {})) {
        const granted = scopes.filter((scope) => granting.has(scope));
        const refused = scopes.filter((scope) => !granting.has(scope));
        if (granted.length) grant.addResourceScope(indicator, granted.join(' '));
        if (refused.length) grant.rejectResourceScope(indicator, refused.join(' '));
      }
      result = { consent: { grantId: await grant.save() } };
    } else {
      result = { error: 'access_denied', error_description: `unexpected prompt ${prompt.name}` };
    }
    const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: true });
    ctx.status = 303;
    ctx.redirect(returnTo);
  });

  return provider;
}

let signingKey = newSigningKey();
writeKey(signingKey);

let handler = () => {};
const server = http.createServer((req, res) => handler(req, res));

function listen(port) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve(server.address().port);
    });
  });
}

const port = await listen(0);
const issuer = `http://127.0.0.1:${port}`;
handler = buildProvider(issuer, signingKey).callback();
say({ event: 'ready', url: issuer, kid: signingKey.kid });

const commands = readline.createInterface({ input: process.stdin });
commands.on('line', async (line) => {
  const command = line.trim();
  try {
    if (command === 'stop') {
      await new Promise((resolve) => {
        server.close(resolve);
        server.closeAllConnections();
      });
      say({ event: 'stopped' });
    } else if (command === 'start') {
      await listen(port);
      say({ event: 'ready', url: issuer, kid: signingKey.kid });
    } else if (command === 'rotate') {
      signingKey = newSigningKey();
      handler = buildProvider(issuer, signingKey).callback();
      writeKey(signingKey);
      say({ event: 'rotated', kid: signingKey.kid });
    } else {
      say({ event: 'error', message: `unknown command ${command}` });
    }
  } catch (error) {
    say({ event: 'error', message: String(error?.message ?? error) });
  }
});
commands.on('close', () => process.exit(0));
