// An HsmVault client in JavaScript, written from proto/hsmvault/v1/vault.proto and the README's
// "Writing a client" alone: gRPC through @grpc/grpc-js and @grpc/proto-loader, OPAQUE through
// @serenity-kit/opaque (opaque-ke 4.0.1) at its default options, the envelopes through node:crypto.
// tests/HsmVault.Interop.Tests/JavaScriptClientTests.cs runs it against a real daemon.

import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import * as opaque from "@serenity-kit/opaque";

await opaque.ready;

// vault.proto imports its neighbours as "hsmvault/v1/...": load it relative to the proto/ root.
const defaultProtoRoot = fileURLToPath(new URL("../../../proto", import.meta.url));

// keepCase: field names as in the .proto; defaults: proto3 leaves zero values off the wire, and
// without this a guesses_remaining of 0 or an empty opaque_context would read as undefined.
const loaderOptions = { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true };

// @serenity-kit/opaque's default KSF ("memory-constrained", used when keyStretching is left out) is
// Argon2id m = 65536 KiB, t = 3, p = 4: RFC 9106's memory-constrained choice, which is also the
// fleet's default. Its other fixed choices (salt of 16 zero bytes, 64-byte output, version 0x13)
// are the ones vault.proto names for GetFleetInfoResponse.argon2id.
const libraryDefaultArgon2id = { memory_kib: 65536, iterations: 3, parallelism: 4 };

// Every call is bounded, so that a member that never answers fails the call instead of hanging it.
const callTimeoutMs = 60_000;
const ke3Bytes = 64;
const nonceBytes = 12;
const tagBytes = 16;
const backupKeyLabel = Buffer.from("HsmVault backup key v1", "ascii");
const releaseLabel = Buffer.from("HsmVault release v1", "ascii");

/** A refused or failed RPC: the gRPC status, its message, and the hsmvault-reason trailer (if any). */
export class VaultRpcError extends Error {
  constructor(method, error) {
    super(`${method}: ${grpc.status[error.code] ?? error.code}: ${error.details}`);
    this.code = grpc.status[error.code] ?? String(error.code);
    this.details = error.details;
    this.reason = error.metadata?.get("hsmvault-reason")?.[0]?.toString();
  }
}

/**
 * The keyStretching option that makes @serenity-kit/opaque run the fleet's KSF: undefined (the
 * library's default) when the fleet publishes the library's default parameters, otherwise
 * argon2id-custom with the published ones. The library's memory unit is KiB, as the fleet's.
 */
export function keyStretchingFor(argon2id) {
  if (!argon2id) {
    throw new Error("the fleet did not publish its Argon2id parameters");
  }

  const isLibraryDefault = Object.entries(libraryDefaultArgon2id).every(([name, value]) => argon2id[name] === value);
  return isLibraryDefault
    ? undefined
    : { "argon2id-custom": { memory: argon2id.memory_kib, iterations: argon2id.iterations, parallelism: argon2id.parallelism } };
}

/** The CLI's fingerprint of a backup key: SHA-256 of its bytes, first 8 bytes in lowercase hex, 4 groups of 4. */
export function fingerprint(backupKey) {
  const hex = createHash("sha256").update(backupKey).digest().subarray(0, 8).toString("hex");
  return hex.match(/.{4}/g).join(":");
}

// HKDF-Expand-SHA512 (RFC 5869 section 2.3) with the secret as PRK, and no Extract step: for at
// most 64 bytes that is the start of T(1) = HMAC-SHA512(PRK, info || 0x01). Node's hkdf() always
// runs Extract first and would give a different key.
function hkdfExpandSha512(prk, info, length) {
  return createHmac("sha512", prk).update(Buffer.concat([info, Buffer.of(1)])).digest().subarray(0, length);
}

// AES-256-GCM, laid out as nonce(12) || ciphertext || tag(16).
function seal(secret, label, associatedData, plaintext) {
  const nonce = randomBytes(nonceBytes);
  const cipher = createCipheriv("aes-256-gcm", hkdfExpandSha512(secret, label, 32), nonce, { authTagLength: tagBytes });
  cipher.setAAD(associatedData);
  return Buffer.concat([nonce, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
}

function open(secret, label, associatedData, envelope) {
  if (envelope.length < nonceBytes + tagBytes) {
    return null;
  }

  const decipher = createDecipheriv("aes-256-gcm", hkdfExpandSha512(secret, label, 32), envelope.subarray(0, nonceBytes), {
    authTagLength: tagBytes,
  });
  decipher.setAAD(associatedData);
  decipher.setAuthTag(envelope.subarray(envelope.length - tagBytes));
  try {
    return Buffer.concat([decipher.update(envelope.subarray(nonceBytes, envelope.length - tagBytes)), decipher.final()]);
  } catch {
    return null;
  }
}

const fromUrl = (text) => Buffer.from(text, "base64url");
const toUrl = (bytes) => Buffer.from(bytes).toString("base64url");

/** One user's connection to one fleet member. */
export class HsmVaultClient {
  #client;
  #bearerToken;
  #keyStretching;
  #fleetInfo;

  /**
   * @param {string} address host:port of a member's client endpoint (plain HTTP/2 here; use
   *   grpc.credentials.createSsl() for a TLS endpoint).
   * @param {() => string | Promise<string>} bearerToken the user's JWT (iss = tenant, sub = user,
   *   aud = fleet id, exp required), asked for before each call.
   * @param {{ protoRoot?: string, keyStretching?: object | string }} options protoRoot is the folder
   *   holding hsmvault/v1/*.proto; keyStretching replaces
   *   the one derived from GetFleetInfo (only to show what a client that ignores the fleet gets).
   */
  constructor(address, bearerToken, { protoRoot = defaultProtoRoot, keyStretching } = {}) {
    const definition = grpc.loadPackageDefinition(
      protoLoader.loadSync("hsmvault/v1/vault.proto", { ...loaderOptions, includeDirs: [protoRoot] }));
    this.#client = new definition.hsmvault.v1.Vault(address, grpc.credentials.createInsecure());
    this.#bearerToken = bearerToken;
    this.#keyStretching = keyStretching;
  }

  close() {
    this.#client.close();
  }

  /** GetFleetInfo (no bearer token), fetched once. */
  async fleetInfo() {
    this.#fleetInfo ??= await this.#call("GetFleetInfo", {}, { authenticated: false });
    return this.#fleetInfo;
  }

  /** The keyStretching option this client passes to the library for this fleet. */
  async keyStretching() {
    const info = await this.#opaqueConfiguration();
    return this.#keyStretching ?? keyStretchingFor(info.argon2id);
  }

  /** Registers backupKey (bytes) behind password (a string: the library hashes its UTF-8 bytes). */
  async register(password, backupKey, { guessLimit = 0, replaceExisting = false } = {}) {
    const info = await this.#opaqueConfiguration();
    const keyStretching = await this.keyStretching();
    const { clientRegistrationState, registrationRequest } = opaque.client.startRegistration({ password });
    const started = await this.#call("StartRegistration", { registration_request: fromUrl(registrationRequest) });
    const finished = opaque.client.finishRegistration({
      clientRegistrationState,
      registrationResponse: toUrl(started.registration_response),
      password,
      keyStretching,
    });
    requireFleetKey(info, finished.serverStaticPublicKey);
    const encryptedSecret = seal(fromUrl(finished.exportKey), backupKeyLabel, Buffer.alloc(0), backupKey);
    const response = await this.#call("FinishRegistration", {
      registration_record: fromUrl(finished.registrationRecord),
      encrypted_secret: encryptedSecret,
      guess_limit: guessLimit,
      replace_existing: replaceExisting,
      registration_ticket: started.registration_ticket,
    });
    return { guessLimit: response.guess_limit, replaced: response.replaced };
  }

  /**
   * One recovery attempt; it costs a guess whatever the outcome. Returns { outcome, guessesRemaining,
   * backupKey? } with outcome SUCCESS, WRONG_PASSWORD or RECORD_DESTROYED.
   */
  async recover(password) {
    const info = await this.#opaqueConfiguration();
    const keyStretching = await this.keyStretching();
    const { clientLoginState, startLoginRequest } = opaque.client.startLogin({ password });
    let started;
    try {
      started = await this.#call("StartRecovery", { ke1: fromUrl(startLoginRequest) });
    } catch (e) {
      if (e instanceof VaultRpcError && e.reason === "RECORD_DESTROYED") {
        return { outcome: "RECORD_DESTROYED", guessesRemaining: 0 };
      }

      throw e;
    }

    // finishLogin returns undefined when KE2 does not authenticate: a wrong password, or a user
    // with no record (the fleet answered with a fake record). The guess is already charged. A KE3
    // that cannot verify makes the fleet record the failure now and say how many guesses are left
    // (on the last guess it destroys the record now rather than at the next attempt).
    const login = opaque.client.finishLogin({
      clientLoginState,
      loginResponse: toUrl(started.ke2),
      password,
      keyStretching,
    });
    const ke3 = login ? fromUrl(login.finishLoginRequest) : randomBytes(ke3Bytes);
    const finished = await this.#call("FinishRecovery", { session_id: started.session_id, ke3 });
    switch (finished.outcome) {
      case "RECOVERY_OUTCOME_SUCCESS": {
        if (!login) {
          throw new Error("FinishRecovery accepted a KE3 this client could not compute");
        }

        requireFleetKey(info, login.serverStaticPublicKey);
        const encryptedSecret = open(fromUrl(login.sessionKey), releaseLabel, started.session_id, finished.released_secret);
        if (!encryptedSecret) {
          throw new Error("the released secret does not authenticate under this login's session key");
        }

        const backupKey = open(fromUrl(login.exportKey), backupKeyLabel, Buffer.alloc(0), encryptedSecret);
        if (!backupKey) {
          throw new Error("the stored secret does not open under this password's export key");
        }

        return { outcome: "SUCCESS", guessesRemaining: finished.guesses_remaining, backupKey };
      }
      case "RECOVERY_OUTCOME_WRONG_PASSWORD":
        return { outcome: "WRONG_PASSWORD", guessesRemaining: finished.guesses_remaining };
      case "RECOVERY_OUTCOME_RECORD_DESTROYED":
        return { outcome: "RECORD_DESTROYED", guessesRemaining: 0 };
      default:
        throw new Error(`FinishRecovery answered an unknown outcome ${finished.outcome}`);
    }
  }

  /** GetStatus: { registered, guess_limit, guesses_remaining, destroyed }. */
  async status() {
    return this.#call("GetStatus", {});
  }

  /** DeleteRecord. */
  async deleteRecord() {
    await this.#call("DeleteRecord", {});
  }

  // The library has no context parameter: it always uses the empty context. A fleet that publishes
  // another cannot be used with it, and trying would only spend guesses on logins that cannot verify.
  async #opaqueConfiguration() {
    const info = await this.fleetInfo();
    if (info.opaque_context.length !== 0) {
      throw new Error(
        `the fleet's OPAQUE context is ${JSON.stringify(info.opaque_context.toString("utf8"))}, ` +
          "but @serenity-kit/opaque only supports the empty context",
      );
    }

    return info;
  }

  async #call(method, request, { authenticated = true } = {}) {
    const metadata = new grpc.Metadata();
    if (authenticated) {
      metadata.set("authorization", `Bearer ${await this.#bearerToken()}`);
    }

    return new Promise((resolve, reject) => {
      this.#client[method](request, metadata, { deadline: Date.now() + callTimeoutMs }, (error, response) =>
        error ? reject(new VaultRpcError(method, error)) : resolve(response),
      );
    });
  }
}

// GetFleetInfo and the OPAQUE messages come from the same member; a member whose AKE key differs
// from the one it publishes is misconfigured, and nothing it stores could be recovered elsewhere.
function requireFleetKey(info, serverStaticPublicKey) {
  if (!fromUrl(serverStaticPublicKey).equals(info.server_public_key)) {
    throw new Error("the member's OPAQUE server key differs from the one GetFleetInfo published");
  }
}
