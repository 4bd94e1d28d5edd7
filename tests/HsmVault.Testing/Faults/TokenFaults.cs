using HsmVault.Hsm;
using HsmVault.Hsm.Internal;
using Microsoft.Extensions.Logging;
using Net.Pkcs11Interop.Common;

namespace HsmVault.Testing.Faults;

/// <summary>
/// Makes a real token (SoftHSM2 or NSS) fail the way hardware does and SoftHSM2 never does,
/// from inside <see cref="Pkcs11VaultToken"/>: the fault is raised where the PKCS#11 call would
/// fail, after the operation has taken its session, so the token's own recovery (discard the
/// session, find the token again, log in again, retry once) runs for real.
/// </summary>
/// <remarks>
/// <code>
/// var faults = new TokenFaults();
/// using var token = faults.Open(SoftHsmEnvironment.Shared.CreateProvisionedToken());
/// faults.FailNext(CKR.CKR_SESSION_HANDLE_INVALID);   // the next operation loses its session
/// faults.RemoveToken(); ... faults.ReinsertToken();  // pulled out, then back
/// </code>
/// Thread-safe; every fault raised is counted in <see cref="Injected"/>.
/// </remarks>
public sealed class TokenFaults : IDisposable
{
    private readonly Lock _lock = new();
    private readonly Queue<(string? Operation, CKR ReturnValue)> _scripted = new();
    private readonly ManualResetEventSlim _running = new(initialState: true);
    private bool _removed;
    private int _injected;
    private int _held;

    /// <summary>How many faults have been raised so far.</summary>
    public int Injected => Volatile.Read(ref _injected);

    /// <summary>How many operations are waiting in <see cref="HoldOperations"/> now.</summary>
    public int Held => Volatile.Read(ref _held);

    /// <summary>Opens <paramref name="options"/>' token with these faults between it and its callers.</summary>
    public Pkcs11VaultToken Open(TokenOptions options, ILogger? logger = null) => Pkcs11VaultToken.OpenWithFaults(options, logger, new Seam(this));

    /// <summary>
    /// The next operation (of <paramref name="operation"/>, e.g. <c>"Unseal"</c>, or any) fails
    /// with <paramref name="returnValue"/> as its PKCS#11 call would: CKR_SESSION_HANDLE_INVALID
    /// (the HSM dropped the session), CKR_USER_NOT_LOGGED_IN (the login expired),
    /// CKR_DEVICE_ERROR, ... Queue several by calling again.
    /// </summary>
    public void FailNext(CKR returnValue, string? operation = null)
    {
        lock (_lock)
        {
            _scripted.Enqueue((operation, returnValue));
        }
    }

    /// <summary>
    /// The token is pulled out: operations fail with CKR_DEVICE_REMOVED and looking for it again
    /// fails with CKR_TOKEN_NOT_PRESENT, until <see cref="ReinsertToken"/>.
    /// </summary>
    public void RemoveToken()
    {
        lock (_lock)
        {
            _removed = true;
        }
    }

    /// <summary>The token is back: the next operation finds it again and logs in.</summary>
    public void ReinsertToken()
    {
        lock (_lock)
        {
            _removed = false;
        }
    }

    /// <summary>Every operation from now on blocks inside the token (a slow or hung HSM) until <see cref="ReleaseOperations"/>.</summary>
    public void HoldOperations() => _running.Reset();

    /// <summary>Lets held operations, and later ones, run.</summary>
    public void ReleaseOperations() => _running.Set();

    /// <inheritdoc/>
    public void Dispose()
    {
        _running.Set();
        _running.Dispose();
    }

    private void BeforeOperation(string operation)
    {
        if (!_running.IsSet)
        {
            Interlocked.Increment(ref _held);
            try
            {
                _running.Wait();
            }
            finally
            {
                Interlocked.Decrement(ref _held);
            }
        }

        CKR? fault = null;
        lock (_lock)
        {
            if (_removed)
            {
                fault = CKR.CKR_DEVICE_REMOVED;
            }
            else if (_scripted.TryPeek(out var next) && (next.Operation is null || next.Operation == operation))
            {
                fault = _scripted.Dequeue().ReturnValue;
            }
        }

        if (fault is { } rv)
        {
            Interlocked.Increment(ref _injected);
            throw new Pkcs11Exception("C_" + operation, rv);
        }
    }

    private void BeforeReconnect()
    {
        lock (_lock)
        {
            if (!_removed)
            {
                return;
            }
        }

        Interlocked.Increment(ref _injected);
        throw new Pkcs11Exception("C_GetSlotList", CKR.CKR_TOKEN_NOT_PRESENT);
    }

    /// <summary>The internal seam HsmVault.Hsm calls; kept apart so the public surface is this class's methods.</summary>
    private sealed class Seam(TokenFaults faults) : ITokenFaults
    {
        public void BeforeOperation(string operation) => faults.BeforeOperation(operation);

        public void BeforeReconnect() => faults.BeforeReconnect();
    }
}
