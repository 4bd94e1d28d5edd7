using System.Collections.Concurrent;
using System.Security.Cryptography;
using HsmVault.Crypto.Signatures;
using HsmVault.Hsm.Internal;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace HsmVault.Hsm;

/// <summary>A token key's security attributes; null where the token would not say.</summary>
/// <param name="Local">CKA_LOCAL: generated in this token.</param>
/// <param name="NeverExtractable">CKA_NEVER_EXTRACTABLE.</param>
/// <param name="AlwaysSensitive">CKA_ALWAYS_SENSITIVE.</param>
/// <param name="Sensitive">CKA_SENSITIVE.</param>
/// <param name="Extractable">CKA_EXTRACTABLE.</param>
public sealed record TokenKeyAttributes(bool? Local, bool? NeverExtractable, bool? AlwaysSensitive, bool? Sensitive, bool? Extractable);

/// <summary>
/// One named Ed25519 signing key in a token, for a daemon that holds no fleet keys (the
/// witness): finds the key pair by label, or generates it inside the token (sensitive, never
/// extractable), and signs with CKM_EDDSA under the module's cap on concurrent operations, on
/// pooled sessions that each serve one operation at a time. A session lost to the token is
/// replaced by logging in again, once per operation.
/// </summary>
public sealed class TokenSigningKey : IDisposable
{
    private readonly IPkcs11Library _library;
    private readonly TokenOptions _reconnectOptions;
    private readonly Pin _pin;
    private readonly string _keyLabel;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _gate;
    private readonly Lock _reconnectLock = new();
    private volatile Connection _connection;
    private volatile bool _disposed;

    private TokenSigningKey(IPkcs11Library library, TokenOptions options, Pin pin, string keyLabel, Connection connection, ILogger logger)
    {
        _library = library;
        // Found again by the serial it had, too: of two tokens with one label, the one first opened.
        _reconnectOptions = TokenOptionsValidator.Check(options);
        _reconnectOptions.TokenSerial = connection.Description.SerialNumber;
        _pin = pin;
        _keyLabel = keyLabel;
        _connection = connection;
        _logger = logger;
        _gate = Pkcs11Modules.OperationGate(options.ModulePath, options.MaxConcurrentOperations);
        PublicKey = connection.PublicKey;
    }

    /// <summary>The token the key is in.</summary>
    public TokenDescription Description => _connection.Description;

    /// <summary>The key's public half (always Ed25519).</summary>
    public SigningKeyDescription PublicKey { get; }

    /// <summary>Whether <see cref="Open"/> generated the key (it was not in the token before).</summary>
    public bool Generated { get; private init; }

    /// <summary>
    /// Opens the token and the Ed25519 key pair labelled <paramref name="keyLabel"/> (public half
    /// <c>{keyLabel}-pub</c>); with <paramref name="generateIfMissing"/>, generates it in the token
    /// first when the token has neither half.
    /// </summary>
    /// <exception cref="TokenConfigurationException">No such token, a wrong PIN, no Ed25519 in the token, a missing or half-present key, a key that is not Ed25519, or a private half that does not sign for its public half.</exception>
    public static TokenSigningKey Open(TokenOptions options, string keyLabel, bool generateIfMissing, ILogger? logger = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(keyLabel);
        logger ??= NullLogger.Instance;
        var copy = TokenOptionsValidator.Check(options);
        var library = Pkcs11Modules.Get(copy.ModulePath, copy.ModuleInitArgs);
        var pin = Pin.Load(copy);
        try
        {
            var connection = Connection.Open(library, copy, pin, keyLabel, generateIfMissing, out var generated);
            if (generated)
            {
                TokenProvisioner.Log.KeyProvisioned(logger, connection.Description.Label, keyLabel);
            }

            return new TokenSigningKey(library, copy, pin, keyLabel, connection, logger) { Generated = generated };
        }
        catch
        {
            pin.Dispose();
            throw;
        }
    }

    /// <summary>The Ed25519 signature (RFC 8032, 64 bytes) of <paramref name="message"/>, made in the token.</summary>
    /// <exception cref="TokenUnavailableException">The token stays unreachable after logging in again, or gave no operation slot within <see cref="TokenOptions.OperationTimeout"/>.</exception>
    public byte[] Sign(ReadOnlySpan<byte> message)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var data = message.ToArray();
        Pkcs11VaultToken.WaitForSlot(_gate, _reconnectOptions, _connection.Description.Label, "Sign", _logger);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var connection = _connection;
            try
            {
                return connection.Sign(data);
            }
            catch (Pkcs11Exception ex) when (SessionLoss.IsSessionLost(ex.RV))
            {
                Pkcs11VaultToken.Log.SessionLost(_logger, connection.Description.Label, "Sign", ex.RV);
            }

            try
            {
                return Reconnect(connection).Sign(data);
            }
            catch (Exception ex) when (ex is Pkcs11Exception or TokenConfigurationException)
            {
                Pkcs11VaultToken.Log.TokenUnavailable(_logger, connection.Description.Label, "Sign", ex);
                throw new TokenUnavailableException(
                    $"token '{connection.Description.Label}' is unavailable: signing with '{_keyLabel}' failed after logging in again ({ex.Message})", ex);
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// The private key's attributes as the token reports them, for deployment evidence: a key
    /// generated here shows CKA_LOCAL, CKA_NEVER_EXTRACTABLE, CKA_ALWAYS_SENSITIVE and
    /// CKA_SENSITIVE true, CKA_EXTRACTABLE false.
    /// </summary>
    public TokenKeyAttributes ReadAttributes()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        Pkcs11VaultToken.WaitForSlot(_gate, _reconnectOptions, _connection.Description.Label, "ReadAttributes", _logger);
        try
        {
            return _connection.ReadAttributes();
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Closes the token's sessions and wipes the PIN kept for logging in again. The module stays loaded.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        lock (_reconnectLock)
        {
            _connection.Dispose();
        }

        _pin.Dispose();
    }

    private Connection Reconnect(Connection failed)
    {
        lock (_reconnectLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_connection != failed)
            {
                return _connection;
            }

            failed.Dispose();
            // Open proves the pair found is whole (its private half signs for its public half);
            // here it must also be the pair of start-up (see PinnedTokenIdentity for the vault's token).
            var fresh = Connection.Open(_library, _reconnectOptions, _pin, _keyLabel, generateIfMissing: false, out _);
            if (!fresh.PublicKey.Equals(PublicKey))
            {
                fresh.Dispose();
                throw new TokenConfigurationException(
                    $"key '{_keyLabel}' in the token found as '{fresh.Description.Label}' in slot 0x{fresh.Description.SlotId:x} is not the key " +
                    "this daemon opened at start-up; refusing the token until the right one is back");
            }

            _connection = fresh;
            Pkcs11VaultToken.Log.Reconnected(_logger, fresh.Description.Label, fresh.Description.SlotId, 0);
            return fresh;
        }
    }

    /// <summary>One login: the logged-in session, the key's handle and a pool of idle operation sessions.</summary>
    private sealed class Connection : IDisposable
    {
        private readonly ISlot _slot;
        private readonly ISession _loginSession;
        private readonly IObjectHandle _privateKey;
        private readonly ConcurrentBag<ISession> _idle = [];

        private Connection(ISlot slot, TokenDescription description, ISession loginSession, IObjectHandle privateKey, SigningKeyDescription publicKey)
        {
            _slot = slot;
            Description = description;
            _loginSession = loginSession;
            _privateKey = privateKey;
            PublicKey = publicKey;
        }

        public TokenDescription Description { get; }

        public SigningKeyDescription PublicKey { get; }

        /// <summary>Logs in and finds the key pair, generating a missing pair if <paramref name="generateIfMissing"/>.</summary>
        public static Connection Open(IPkcs11Library library, TokenOptions options, Pin pin, string keyLabel, bool generateIfMissing, out bool generated)
        {
            generated = false;
            var (slot, description) = TokenLocator.Find(library, options);
            var session = TokenLocator.OpenLoggedIn(slot, pin, description.Label);
            try
            {
                var publicLabel = keyLabel + "-pub";
                var privateKey = session.FindSingle(CKO.CKO_PRIVATE_KEY, keyLabel, description.Label);
                var publicKey = session.FindSingle(CKO.CKO_PUBLIC_KEY, publicLabel, description.Label);
                if ((privateKey is null) != (publicKey is null))
                {
                    throw new TokenConfigurationException(
                        $"token '{description.Label}' has only one half of the key '{keyLabel}'; remove it, or restore the other half");
                }

                if (privateKey is null || publicKey is null)
                {
                    if (!generateIfMissing)
                    {
                        throw new TokenConfigurationException($"token '{description.Label}' has no key '{keyLabel}'");
                    }

                    (publicKey, privateKey) = Generate(slot, session, keyLabel, publicLabel, description.Label);
                    generated = true;
                }

                var key = FleetKeyHandles.ReadPublicKey(session, publicKey, publicLabel, description.Label);
                if (key.Algorithm != SignatureAlgorithm.Ed25519)
                {
                    throw new TokenConfigurationException(
                        $"key '{keyLabel}' in token '{description.Label}' is {key.Algorithm}; it must be Ed25519 (C2SP note signatures are Ed25519)");
                }

                var connection = new Connection(slot, description, session, privateKey, key);

                // A public key object can be copied into a token by value; the private key cannot.
                // So the pair found must sign a fresh challenge that verifies: a private half
                // swapped in behind a copied public half is refused here, at start-up as after
                // a reconnect, before a signature is made with it.
                var challenge = RandomNumberGenerator.GetBytes(32);
                if (!key.Verifies(challenge, connection.Sign(challenge)))
                {
                    connection.Dispose();
                    throw new TokenConfigurationException(
                        $"key '{keyLabel}' in token '{description.Label}' does not sign for its public half '{publicLabel}': " +
                        "the private key is not the one the public key was made with; restore the token's key pair");
                }

                return connection;
            }
            catch
            {
                session.CloseQuietly();
                throw;
            }
        }

        public byte[] Sign(byte[] data)
        {
            var session = _idle.TryTake(out var idle) ? idle : _slot.OpenSession(SessionType.ReadOnly);
            byte[] signature;
            try
            {
                using var mechanism = Pkcs11Modules.Factories.MechanismFactory.Create(Pkcs11Constants.CkmEddsa);
                signature = session.Sign(mechanism, _privateKey, data);
            }
            catch (Pkcs11Exception)
            {
                // After an error the session may hold a half-finished operation or be dead: never reuse it.
                session.CloseQuietly();
                throw;
            }

            _idle.Add(session);
            return signature;
        }

        public TokenKeyAttributes ReadAttributes()
        {
            var session = _idle.TryTake(out var idle) ? idle : _slot.OpenSession(SessionType.ReadOnly);
            try
            {
                var values = session.GetBools(_privateKey,
                    CKA.CKA_LOCAL, CKA.CKA_NEVER_EXTRACTABLE, CKA.CKA_ALWAYS_SENSITIVE, CKA.CKA_SENSITIVE, CKA.CKA_EXTRACTABLE);
                return new TokenKeyAttributes(values[CKA.CKA_LOCAL], values[CKA.CKA_NEVER_EXTRACTABLE], values[CKA.CKA_ALWAYS_SENSITIVE],
                    values[CKA.CKA_SENSITIVE], values[CKA.CKA_EXTRACTABLE]);
            }
            finally
            {
                _idle.Add(session);
            }
        }

        public void Dispose()
        {
            while (_idle.TryTake(out var session))
            {
                session.CloseQuietly();
            }

            _loginSession.CloseQuietly();
        }

        /// <summary>Generates the Ed25519 pair in the token: the private half sensitive, never extractable, signing only.</summary>
        private static (IObjectHandle PublicKey, IObjectHandle PrivateKey) Generate(ISlot slot, ISession session, string privateLabel, string publicLabel, string tokenLabel)
        {
            var mechanisms = slot.GetMechanismList();
            if (!mechanisms.Contains((CKM)Pkcs11Constants.CkmEcEdwardsKeyPairGen) || !mechanisms.Contains((CKM)Pkcs11Constants.CkmEddsa))
            {
                throw new TokenConfigurationException(
                    $"token '{tokenLabel}' cannot generate Ed25519 keys (no CKM_EC_EDWARDS_KEY_PAIR_GEN/CKM_EDDSA); C2SP note signatures need Ed25519");
            }

            using var publicTemplate = new AttributeList()
                .Add(CKA.CKA_TOKEN, true)
                .Add(CKA.CKA_PRIVATE, false)
                .Add(CKA.CKA_LABEL, publicLabel)
                .Add(CKA.CKA_VERIFY, true)
                .Add(CKA.CKA_ENCRYPT, false)
                .Add(CKA.CKA_WRAP, false)
                .Add(CKA.CKA_DERIVE, false)
                .Add(CKA.CKA_EC_PARAMS, Pkcs11Constants.Ed25519Params.ToArray());
            using var privateTemplate = TokenProvisioner.SigningKeyTemplate(privateLabel, extractable: false);
            using var mechanism = Pkcs11Modules.Factories.MechanismFactory.Create(Pkcs11Constants.CkmEcEdwardsKeyPairGen);
            session.GenerateKeyPair(mechanism, publicTemplate.Items, privateTemplate.Items, out var publicKey, out var privateKey);
            return (publicKey, privateKey);
        }
    }
}
