using System.Security.Cryptography;
using HsmVault.Crypto.Signatures;
using HsmVault.Hsm.Internal;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;
using Net.Pkcs11Interop.HighLevelAPI.Factories;

namespace HsmVault.Hsm;

/// <summary>
/// <see cref="IVaultToken"/> over a PKCS#11 module through Pkcs11Interop. Open one with
/// <see cref="Open"/>; dispose it to close its sessions and wipe the PIN it keeps.
/// </summary>
/// <remarks>
/// Follows Pkcs11Interop's own rules (doc/09_FAQ.md): the module is loaded once per process
/// (<c>AppType.MultiThreaded</c>), one logged-in session stays open, and each operation
/// borrows its own session from a pool. A semaphore caps concurrent operations at
/// <see cref="TokenOptions.MaxConcurrentOperations"/> because SoftHSM2 crashes with private-key
/// operations from four or more threads (SoftHSM issue 688); the cap is shared by every token
/// opened on the same module in the process, and the first token opened sets it. When the token drops its sessions
/// (closed, logged out, removed, failing), the token is found again by label and the serial it
/// had at start-up (in whatever slot it is now), logged in again, its keys re-found, checked to be
/// the same token (<see cref="PinnedTokenIdentity"/>: another token under the same name is refused), and
/// the operation retried once.
/// </remarks>
public sealed partial class Pkcs11VaultToken : IVaultToken
{
    private static readonly IMechanismFactory Mechanisms = Pkcs11Modules.Factories.MechanismFactory;

    private readonly IPkcs11Library _library;
    private readonly TokenOptions _options;
    private readonly TokenOptions _reconnectOptions;
    private readonly PinnedTokenIdentity _identity;
    private readonly Pin _pin;
    private readonly FleetKeyLabels _labels;
    private readonly ILogger _logger;
    private readonly ITokenFaults? _faults;
    private readonly SemaphoreSlim _gate;
    private readonly NativeCalls _native;
    private readonly Lock _reconnectLock = new();

    // Operations use the connection under the read lock; a reconnect replaces it under the write
    // lock. Without it a reconnect could close the sessions of operations still running on the old
    // connection, and a module that reuses session and object handles (NSS softoken does) would
    // then run those operations on the new connection's objects: a wrong key, not just an error.
    private readonly ReaderWriterLockSlim _connectionLock = new(LockRecursionPolicy.NoRecursion);
    private readonly Lock _dataObjectLock = new();

    // Where each data object's copies are, as this process last read or wrote them, and for which connection:
    // object handles belong to a login, so a reconnect makes them unknown again. Guarded by _dataObjectLock.
    private readonly Dictionary<string, (FleetKeyHandles Connection, StoredObject Location)> _dataObjectLocations = new(StringComparer.Ordinal);
    private volatile TokenConnection _connection;
    private volatile bool _disposed;
    private int _inFlight;

    private Pkcs11VaultToken(
        IPkcs11Library library, TokenOptions options, Pin pin, FleetKeyLabels labels, TokenConnection connection, PinnedTokenIdentity identity, ILogger logger, ITokenFaults? faults)
    {
        _faults = faults;
        _library = library;
        _options = options;
        _identity = identity;

        // Found again by the serial it had, too: of two tokens with one label, the one first opened.
        _reconnectOptions = TokenOptionsValidator.Check(options);
        _reconnectOptions.TokenSerial = identity.SerialNumber;
        _pin = pin;
        _labels = labels;
        _connection = connection;
        _logger = logger;
        _gate = Pkcs11Modules.OperationGate(options.ModulePath, options.MaxConcurrentOperations);
        _native = Pkcs11Modules.NativeOf(options.ModulePath);
        SigningKey = connection.Keys.SigningPublicKey;
        MemberIdentityKey = connection.Keys.MemberIdentityPublicKey;
    }

    /// <inheritdoc/>
    public TokenDescription Description => _connection.Description;

    /// <inheritdoc/>
    public SigningKeyDescription SigningKey { get; }

    /// <inheritdoc/>
    public SigningKeyDescription MemberIdentityKey { get; }

    /// <summary>
    /// Loads the module (once per process), finds the token by label and/or serial, logs in
    /// with the PIN from <see cref="TokenOptions.PinFile"/> or
    /// <see cref="TokenOptions.PinEnvironmentVariable"/>, and finds the fleet keys.
    /// </summary>
    /// <param name="options">Where the token is and how to log in. Copied; later changes have no effect.</param>
    /// <param name="logger">Receives open/reconnect events (ids 2000-2099); null for none.</param>
    /// <exception cref="TokenConfigurationException">
    /// Module missing, token not found (the message lists the slots present), no or wrong PIN,
    /// or fleet keys missing (provision them with <see cref="TokenProvisioner.ProvisionFleetKeys"/>).
    /// </exception>
    public static Pkcs11VaultToken Open(TokenOptions options, ILogger? logger = null) => OpenWithFaults(options, logger, faults: null);

    /// <summary><see cref="Open(TokenOptions, ILogger?)"/> with a test's fault injector between the token and its callers.</summary>
    internal static Pkcs11VaultToken OpenWithFaults(TokenOptions options, ILogger? logger, ITokenFaults? faults)
    {
        ArgumentNullException.ThrowIfNull(options);
        var copy = TokenOptionsValidator.Check(options);
        logger ??= NullLogger.Instance;
        var library = Pkcs11Modules.Get(copy.ModulePath, copy.ModuleInitArgs);
        var pin = Pin.Load(copy);
        try
        {
            var labels = new FleetKeyLabels(copy.KeyLabelPrefix);
            var connection = TokenConnection.Open(library, copy, pin, labels, generation: 1, logger,
                slot => TokenRequirements.RequireMember(TokenRequirements.Check(slot.Slot.GetMechanismList().Select(m => (ulong)m), slot.Description)));
            PinnedTokenIdentity identity;
            try
            {
                identity = PinnedTokenIdentity.Capture(connection, Pkcs11Modules.NativeOf(copy.ModulePath));
            }
            catch
            {
                connection.Dispose();
                throw;
            }

            var d = connection.Description;
            Log.TokenOpened(logger, d.Label, d.SerialNumber, d.ManufacturerId, d.Model, d.SlotId, copy.MaxConcurrentOperations);
            return new Pkcs11VaultToken(library, copy, pin, labels, connection, identity, logger, faults);
        }
        catch
        {
            pin.Dispose();
            throw;
        }
    }

    /// <inheritdoc/>
    public void ExpandOprfSeed(ReadOnlySpan<byte> info, Span<byte> destination)
    {
        if (destination.Length != 32)
        {
            throw new ArgumentException("destination must be exactly 32 bytes", nameof(destination));
        }

        // RFC 5869 HKDF-Expand with L = 32 <= HashLen: T(1) = HMAC(PRK, info || 0x01), truncated.
        var input = new byte[info.Length + 1];
        info.CopyTo(input);
        input[^1] = 0x01;
        var mac = Execute("ExpandOprfSeed", (session, keys) =>
        {
            using var mechanism = Mechanisms.Create(CKM.CKM_SHA512_HMAC);
            return session.Sign(mechanism, keys.OprfSeed, input);
        });
        try
        {
            mac.AsSpan(0, 32).CopyTo(destination);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(mac);
            CryptographicOperations.ZeroMemory(input);
        }
    }

    /// <inheritdoc/>
    public byte[] Seal(ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> associatedData)
    {
        // A fresh random IV per seal: with an empty IV SoftHSM2 accepts the call and GCM turns
        // deterministic; with a repeated IV GCM loses confidentiality and authenticity.
        var iv = RandomNumberGenerator.GetBytes(Pkcs11Constants.GcmIvLength);
        var data = plaintext.ToArray();
        var aad = associatedData.ToArray();
        try
        {
            // Single-part only (NSS softoken refuses multi-part GCM), with the output buffer sized
            // here: NSS's length query leaves out the tag (see NativeCalls).
            var ciphertextAndTag = Execute("Seal", (session, keys) =>
                _native.GcmEncrypt(session, keys.RecordKey, iv, aad, Pkcs11Constants.GcmTagLength, data));
            var blob = new byte[iv.Length + ciphertextAndTag.Length];
            iv.CopyTo(blob, 0);
            ciphertextAndTag.CopyTo(blob, iv.Length);
            return blob;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(data);
        }
    }

    /// <inheritdoc/>
    public byte[] Unseal(ReadOnlySpan<byte> sealedBlob, ReadOnlySpan<byte> associatedData)
    {
        if (sealedBlob.Length < Pkcs11Constants.GcmIvLength + Pkcs11Constants.GcmTagLength)
        {
            throw new SealedDataIntegrityException(
                $"sealed blob is {sealedBlob.Length} bytes; a sealed blob has at least {Pkcs11Constants.GcmIvLength + Pkcs11Constants.GcmTagLength} (IV and tag)");
        }

        var iv = sealedBlob[..Pkcs11Constants.GcmIvLength].ToArray();
        var ciphertextAndTag = sealedBlob[Pkcs11Constants.GcmIvLength..].ToArray();
        var aad = associatedData.ToArray();
        try
        {
            return Execute("Unseal", (session, keys) =>
                _native.GcmDecrypt(session, keys.RecordKey, iv, aad, Pkcs11Constants.GcmTagLength, ciphertextAndTag));
        }
        catch (Pkcs11Exception ex) when (ex.RV is CKR.CKR_GENERAL_ERROR or CKR.CKR_ENCRYPTED_DATA_INVALID or CKR.CKR_ENCRYPTED_DATA_LEN_RANGE)
        {
            // SoftHSM2 reports a failed GCM tag check as CKR_GENERAL_ERROR; the standard (and NSS
            // softoken) says CKR_ENCRYPTED_DATA_INVALID.
            throw new SealedDataIntegrityException($"sealed blob failed its integrity check ({ex.RV}): the blob or its associated data was altered");
        }
    }

    /// <inheritdoc/>
    public byte[] Sign(ReadOnlySpan<byte> message) => SignWith(SigningKey.Algorithm, keys => keys.SigningKey, message);

    /// <inheritdoc/>
    public byte[] SignAsMember(ReadOnlySpan<byte> message) => SignWith(MemberIdentityKey.Algorithm, keys => keys.MemberIdentityKey, message);

    private byte[] SignWith(SignatureAlgorithm algorithm, Func<FleetKeyHandles, IObjectHandle> key, ReadOnlySpan<byte> message)
    {
        var data = message.ToArray();
        return Execute("Sign", (session, keys) => TokenSignatures.Sign(session, key(keys), algorithm, data));
    }

    /// <inheritdoc/>
    public byte[]? ReadDataObject(string name)
    {
        var label = DataObjectLabel(name);
        return Execute("ReadDataObject", (session, connection) =>
        {
            lock (_dataObjectLock)
            {
                var (value, location) = DataObjects.Read(session, label);
                Remember(label, connection, location);
                return value;
            }
        });
    }

    /// <inheritdoc/>
    /// <remarks>
    /// The new value replaces the old without a moment in which neither exists (see
    /// <c>Internal.DataObjects</c>), and is as durable as the module makes C_SetAttributeValue and
    /// C_CreateObject when this returns: SoftHSM2 has written its object file (without fsync), a
    /// hardware token has committed to its storage. After the first read or write of a name the token
    /// is not searched again: this process is the only writer of its token's data objects (the daemon
    /// holds the token; the operator's commands that write one run while it is stopped), so the copies
    /// it knows are all there are, and a write rewrites the older of them in place. Should a
    /// remembered copy be gone nevertheless, the write searches and numbers past whatever is there.
    /// </remarks>
    public void WriteDataObject(string name, ReadOnlySpan<byte> value)
    {
        var label = DataObjectLabel(name);
        var data = value.ToArray();
        Execute<object?>("WriteDataObject", (session, connection) =>
        {
            // One writer at a time per token object, so two writes to one name cannot pick the
            // same sequence number.
            lock (_dataObjectLock)
            {
                var known = _dataObjectLocations.TryGetValue(label, out var entry) && ReferenceEquals(entry.Connection, connection)
                    ? entry.Location
                    : (StoredObject?)null;

                // Forgotten first: if the write fails half-way, the next one searches.
                _dataObjectLocations.Remove(label);
                Remember(label, connection, DataObjects.Write(session, label, data, known));
                return null;
            }
        });
    }

    private void Remember(string label, FleetKeyHandles connection, StoredObject? location)
    {
        if (location is { } found)
        {
            _dataObjectLocations[label] = (connection, found);
        }
        else
        {
            _dataObjectLocations.Remove(label);
        }
    }

    /// <summary>Closes this token's sessions and wipes the PIN it kept for re-login. The module stays loaded.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;

        // Let running operations finish before their sessions go away; a hung token must not
        // hang shutdown forever, though.
        SpinWait.SpinUntil(() => Volatile.Read(ref _inFlight) == 0, TimeSpan.FromSeconds(10));
        lock (_reconnectLock)
        {
            _connection.Dispose();
        }

        _connectionLock.Dispose();
        _pin.Dispose();
    }

    /// <summary>Test hook: the slot the token is in now, to close its sessions from outside.</summary>
    internal ISlot CurrentSlot => _connection.Slot;

    /// <summary>Test hook: how many times the token has reconnected.</summary>
    internal int Generation => _connection.Generation;

    private string DataObjectLabel(string name)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        return _labels.DataObject(name);
    }

    /// <summary>
    /// Runs <paramref name="action"/> on a pooled session under the concurrency cap; on a lost
    /// session, reconnects and retries once.
    /// </summary>
    private T Execute<T>(string operation, Func<ISession, FleetKeyHandles, T> action)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        WaitForSlot(operation);
        Interlocked.Increment(ref _inFlight);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var connection = _connection;
            try
            {
                return RunLocked(operation, action, out connection);
            }
            catch (Pkcs11Exception ex) when (SessionLoss.IsSessionLost(ex.RV))
            {
                Log.SessionLost(_logger, connection.Description.Label, operation, ex.RV);
            }

            TokenConnection fresh;
            try
            {
                fresh = Reconnect(connection);
            }
            catch (Exception ex) when (ex is Pkcs11Exception or TokenConfigurationException)
            {
                throw Unavailable(connection, operation, ex);
            }

            try
            {
                return RunLocked(operation, action, out fresh);
            }
            catch (Pkcs11Exception ex) when (SessionLoss.IsSessionLost(ex.RV))
            {
                throw Unavailable(fresh, operation, ex);
            }
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
            _gate.Release();
        }
    }

    private void WaitForSlot(string operation) => WaitForSlot(_gate, _options, _connection.Description.Label, operation, _logger);

    /// <summary>
    /// Waits for one of the module's operation slots, at most <see cref="TokenOptions.OperationTimeout"/>;
    /// the one rule for every token object that shares a module's gate.
    /// </summary>
    /// <remarks>
    /// The interface is synchronous on purpose: a token operation takes tens of microseconds and
    /// the vault calls it from code that holds no locks, so an async hop would cost more than the
    /// wait (and the PKCS#11 call itself blocks whatever the wrapper). The wait is what can hurt:
    /// callers run on thread-pool threads, and a token that hangs would pin each of them in
    /// <see cref="SemaphoreSlim.Wait(TimeSpan)"/> until the pool starves and the daemon stops
    /// answering even its health checks. So the wait is bounded: a call that cannot get a slot in
    /// time fails as <see cref="TokenUnavailableException"/> (gRPC UNAVAILABLE) and gives its
    /// thread back. SemaphoreSlim spins briefly before blocking, so the common, uncontended case
    /// never blocks at all.
    /// </remarks>
    internal static void WaitForSlot(SemaphoreSlim gate, TokenOptions options, string label, string operation, ILogger logger)
    {
        if (!gate.Wait(options.OperationTimeout))
        {
            Log.OperationTimedOut(logger, label, operation, options.OperationTimeout);
            throw new TokenUnavailableException(
                $"token '{label}' is unavailable: {operation} waited {options.OperationTimeout.TotalSeconds:0.###} s for one of its " +
                $"{options.MaxConcurrentOperations} operation slots (HsmVault:Token:OperationTimeout); the token is slow or hung");
        }
    }

    /// <summary>Runs the operation once on the connection current under the read lock (returned in <paramref name="used"/>).</summary>
    private T RunLocked<T>(string operation, Func<ISession, FleetKeyHandles, T> action, out TokenConnection used)
    {
        _connectionLock.EnterReadLock();
        try
        {
            used = _connection;
            return RunOnce(used, operation, action);
        }
        finally
        {
            _connectionLock.ExitReadLock();
        }
    }

    private T RunOnce<T>(TokenConnection connection, string operation, Func<ISession, FleetKeyHandles, T> action) =>
        connection.Use(session =>
        {
            _faults?.BeforeOperation(operation);
            return action(session, connection.Keys);
        });

    private TokenConnection Reconnect(TokenConnection failed)
    {
        lock (_reconnectLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var current = _connection;
            if (current != failed)
            {
                // Another operation reconnected while this one waited.
                return current;
            }

            // No operation runs on the old connection past this point (see _connectionLock).
            _connectionLock.EnterWriteLock();
            try
            {
                return ReplaceConnection(failed);
            }
            finally
            {
                _connectionLock.ExitWriteLock();
            }
        }
    }

    private TokenConnection ReplaceConnection(TokenConnection failed)
    {
        failed.Dispose();
        _faults?.BeforeReconnect();
        var fresh = TokenConnection.Open(_library, _reconnectOptions, _pin, _labels, failed.Generation + 1, _logger);
        try
        {
            _identity.Verify(fresh, _native);
        }
        catch (TokenConfigurationException ex)
        {
            fresh.Dispose();
            Log.TokenImpostor(_logger, fresh.Description.Label, fresh.Description.SlotId, ex.Message);
            throw;
        }
        catch
        {
            fresh.Dispose();
            throw;
        }

        _connection = fresh;
        Log.Reconnected(_logger, fresh.Description.Label, fresh.Description.SlotId, fresh.Generation);
        return fresh;
    }

    private TokenUnavailableException Unavailable(TokenConnection connection, string operation, Exception cause)
    {
        Log.TokenUnavailable(_logger, connection.Description.Label, operation, cause);
        return new TokenUnavailableException(
            $"token '{connection.Description.Label}' is unavailable: {operation} failed after reconnecting ({cause.Message})", cause);
    }


    /// <summary>Log messages of the vault token; event ids 2000-2009 (<see cref="TokenSigningKey"/> writes its session events too).</summary>
    internal static partial class Log
    {
        [LoggerMessage(EventId = 2000, EventName = "TokenOpened", Level = LogLevel.Information,
            Message = "Opened token '{Label}' (serial {Serial}, {Manufacturer} {Model}) in slot 0x{SlotId:x}; cap {MaxConcurrentOperations} concurrent operations")]
        public static partial void TokenOpened(ILogger logger, string label, string serial, string manufacturer, string model, ulong slotId, int maxConcurrentOperations);

        [LoggerMessage(EventId = 2001, EventName = "TokenSessionLost", Level = LogLevel.Warning,
            Message = "Token '{Label}' lost its session during {Operation} ({ReturnValue}); reconnecting")]
        public static partial void SessionLost(ILogger logger, string label, string operation, CKR returnValue);

        [LoggerMessage(EventId = 2002, EventName = "TokenReconnected", Level = LogLevel.Information,
            Message = "Reconnected to token '{Label}' in slot 0x{SlotId:x} (generation {Generation})")]
        public static partial void Reconnected(ILogger logger, string label, ulong slotId, int generation);

        [LoggerMessage(EventId = 2003, EventName = "TokenUnavailable", Level = LogLevel.Error,
            Message = "Token '{Label}' is unavailable after reconnecting during {Operation}")]
        public static partial void TokenUnavailable(ILogger logger, string label, string operation, Exception exception);

        [LoggerMessage(EventId = 2005, EventName = "TokenOperationTimedOut", Level = LogLevel.Error,
            Message = "Token '{Label}' gave {Operation} no operation slot within {Timeout}; refusing it as unavailable")]
        public static partial void OperationTimedOut(ILogger logger, string label, string operation, TimeSpan timeout);

        [LoggerMessage(EventId = 2006, EventName = "TokenImpostor", Level = LogLevel.Error,
            Message = "Refused token '{Label}' found in slot 0x{SlotId:x} after a lost session: {Reason}")]
        public static partial void TokenImpostor(ILogger logger, string label, ulong slotId, string reason);
    }
}
