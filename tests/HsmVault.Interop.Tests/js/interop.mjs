// Drives other OPAQUE implementations for tests/HsmVault.Interop.Tests.
//
// Protocol: one JSON object per line on stdin, one JSON object per line on stdout, in order.
// Request:  {"op": "<name>", ...arguments}
// Response: {"ok": true, ...results} or {"ok": false, "error": "<message>"}
// Binary values (protocol messages, keys) are standard base64; library state blobs are opaque strings.
//
// @serenity-kit/opaque encodes messages as base64url without padding; this script converts, so the
// C# side sees the raw RFC 9807 wire bytes.

import * as readline from "node:readline";
import * as serenity from "@serenity-kit/opaque";
import * as cloudflare from "@cloudflare/opaque-ts";
import { LABELS } from "@cloudflare/opaque-ts/lib/src/common.js";
import { Oprf } from "@cloudflare/voprf-ts";
import { HsmVaultClient, VaultRpcError, fingerprint } from "./hsmvault-client.mjs";

const fromB64 = (s) => Buffer.from(s, "base64");
const toB64 = (bytes) => Buffer.from(bytes).toString("base64");
const urlToB64 = (s) => toB64(Buffer.from(s, "base64url"));
const b64ToUrl = (s) => fromB64(s).toString("base64url");

// keyStretching is passed through unchanged (undefined = the library's default).
const ops = {
  ping: () => ({}),

  // --- @serenity-kit/opaque (opaque-ke compiled to WASM) -------------------------------------
  "serenity.client.startRegistration": ({ password }) => {
    const r = serenity.client.startRegistration({ password });
    return { state: r.clientRegistrationState, registrationRequest: urlToB64(r.registrationRequest) };
  },
  "serenity.client.finishRegistration": ({ state, password, registrationResponse, keyStretching }) => {
    const r = serenity.client.finishRegistration({
      clientRegistrationState: state,
      password,
      registrationResponse: b64ToUrl(registrationResponse),
      keyStretching,
    });
    return {
      registrationRecord: urlToB64(r.registrationRecord),
      exportKey: urlToB64(r.exportKey),
      serverStaticPublicKey: urlToB64(r.serverStaticPublicKey),
    };
  },
  "serenity.client.startLogin": ({ password }) => {
    const r = serenity.client.startLogin({ password });
    return { state: r.clientLoginState, ke1: urlToB64(r.startLoginRequest) };
  },
  "serenity.client.finishLogin": ({ state, password, ke2, keyStretching }) => {
    const r = serenity.client.finishLogin({ clientLoginState: state, password, loginResponse: b64ToUrl(ke2), keyStretching });
    if (!r) {
      return { authenticated: false };
    }
    return {
      authenticated: true,
      ke3: urlToB64(r.finishLoginRequest),
      sessionKey: urlToB64(r.sessionKey),
      exportKey: urlToB64(r.exportKey),
      serverStaticPublicKey: urlToB64(r.serverStaticPublicKey),
    };
  },
  "serenity.server.createSetup": () => {
    const setup = serenity.server.createSetup();
    return { setup, publicKey: urlToB64(serenity.server.getPublicKey(setup)) };
  },
  // opaque-ke's ServerSetup serialization is oprf_seed[64] || server_private_key[32] || dummy key[32]
  // (the last is only used for unknown users); this builds one around the C# server's seed and key.
  "serenity.server.setupFrom": ({ oprfSeed, privateKey }) => {
    const fresh = Buffer.from(serenity.server.createSetup(), "base64url");
    const seed = fromB64(oprfSeed);
    const sk = fromB64(privateKey);
    if (fresh.length !== 128 || seed.length !== 64 || sk.length !== 32) {
      throw new Error(`unexpected sizes: setup ${fresh.length}, seed ${seed.length}, key ${sk.length}`);
    }
    const setup = Buffer.concat([seed, sk, fresh.subarray(96)]).toString("base64url");
    return { setup, publicKey: urlToB64(serenity.server.getPublicKey(setup)) };
  },
  "serenity.server.createRegistrationResponse": ({ setup, userIdentifier, registrationRequest }) => {
    const r = serenity.server.createRegistrationResponse({
      serverSetup: setup,
      userIdentifier,
      registrationRequest: b64ToUrl(registrationRequest),
    });
    return { registrationResponse: urlToB64(r.registrationResponse) };
  },
  "serenity.server.startLogin": ({ setup, userIdentifier, registrationRecord, ke1 }) => {
    const r = serenity.server.startLogin({
      serverSetup: setup,
      userIdentifier,
      registrationRecord: registrationRecord ? b64ToUrl(registrationRecord) : null,
      startLoginRequest: b64ToUrl(ke1),
    });
    return { state: r.serverLoginState, ke2: urlToB64(r.loginResponse) };
  },
  // A KE3 whose MAC does not verify makes opaque-ke return an error, which the wrapper throws.
  "serenity.server.finishLogin": ({ state, ke3 }) => {
    try {
      const r = serenity.server.finishLogin({ serverLoginState: state, finishLoginRequest: b64ToUrl(ke3) });
      return { authenticated: true, sessionKey: urlToB64(r.sessionKey) };
    } catch (e) {
      return { authenticated: false, reason: String(e && e.message ? e.message : e) };
    }
  },

  // --- hsmvault-client.mjs against a real daemon: one client (and channel) per call --------------
  // A refused RPC is a result, not a failure: { rpcError: { code, reason, details } }.
  "vault.fleetInfo": ({ address }) =>
    withVault(address, null, undefined, async (vault) => {
      const info = await vault.fleetInfo();
      return {
        fleetId: info.fleet_id,
        opaqueContext: toB64(info.opaque_context),
        argon2id: info.argon2id,
        serverPublicKey: toB64(info.server_public_key),
      };
    }),
  "vault.keyStretching": ({ address }) =>
    withVault(address, null, undefined, async (vault) => ({ keyStretching: (await vault.keyStretching()) ?? null })),
  "vault.register": ({ address, jwt, password, backupKey, guessLimit, replaceExisting, keyStretching }) =>
    withVault(address, jwt, keyStretching, (vault) =>
      vault.register(password, fromB64(backupKey), { guessLimit: guessLimit ?? 0, replaceExisting: replaceExisting ?? false }),
    ),
  "vault.recover": ({ address, jwt, password, keyStretching }) =>
    withVault(address, jwt, keyStretching, async (vault) => {
      const r = await vault.recover(password);
      return r.backupKey
        ? { outcome: r.outcome, guessesRemaining: r.guessesRemaining, backupKey: toB64(r.backupKey), fingerprint: fingerprint(r.backupKey) }
        : { outcome: r.outcome, guessesRemaining: r.guessesRemaining };
    }),
  "vault.status": ({ address, jwt }) =>
    withVault(address, jwt, undefined, async (vault) => {
      const s = await vault.status();
      return { registered: s.registered, guessLimit: s.guess_limit, guessesRemaining: s.guesses_remaining, destroyed: s.destroyed };
    }),
  "vault.delete": ({ address, jwt }) => withVault(address, jwt, undefined, async (vault) => (await vault.deleteRecord(), {})),

  // --- @cloudflare/opaque-ts: only described (see README.md for why it cannot interoperate) ---
  "cloudflare.describe": () => {
    const dec = (label) => Buffer.from(label).toString("utf8");
    return {
      suites: Object.keys(cloudflare.OpaqueID).filter((k) => Number.isNaN(Number(k))),
      preambleLabel: dec(LABELS.RFC),
      dhKeyPairLabel: dec(LABELS.OPAQUE_DeriveAuthKeyPair),
      oprfVersion: Oprf.version,
      ksfs: [cloudflare.IdentityMemHardFn.name, cloudflare.ScryptMemHardFn.name],
    };
  },
};

// keyStretching: undefined lets the client derive it from GetFleetInfo, as an application would.
async function withVault(address, jwt, keyStretching, action) {
  const vault = new HsmVaultClient(address, () => jwt, { keyStretching: keyStretching ?? undefined });
  try {
    return await action(vault);
  } catch (e) {
    if (e instanceof VaultRpcError) {
      return { rpcError: { code: e.code, reason: e.reason ?? null, details: e.details } };
    }

    throw e;
  } finally {
    vault.close();
  }
}

await serenity.ready;

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of rl) {
  if (line.trim() === "") {
    continue;
  }

  let reply;
  try {
    const request = JSON.parse(line);
    const op = ops[request.op];
    if (!op) {
      throw new Error(`unknown op ${request.op}`);
    }
    reply = { ok: true, ...(await op(request)) };
  } catch (e) {
    reply = { ok: false, error: String(e && e.stack ? e.stack : e) };
  }
  process.stdout.write(JSON.stringify(reply) + "\n");
}
