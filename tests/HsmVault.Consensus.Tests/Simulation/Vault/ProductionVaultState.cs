using System.Buffers.Binary;
using HsmVault.Testing.Vault;
using HsmVault.Vault;
using HsmVault.Vault.Signing;
using HsmVault.Vault.State;

namespace HsmVault.Consensus.Tests.Simulation.Vault;

/// <summary>
/// A simulated member's vault: the daemon's own <see cref="VaultStateMachine"/> (its schema, signature checks at
/// apply, <see cref="RecordTransitions"/>, digest chain and snapshot format) over an in-memory SQLite database,
/// so that what the simulator checks is the code that ships. A backup of the member's data folder is restored
/// through the production snapshot format (records, used tickets and digest as of the backup's applied index).
/// </summary>
/// <remarks>
/// The one thing added here is the planted bug of a negative control (<see cref="PlantedBug.ChargeDoesNotCount"/>),
/// injected at the state machine's seam: the charge is answered as the real rule answers it, but the entry reaches
/// the state machine empty, so nothing is stored.
/// </remarks>
internal sealed class ProductionVaultState : ISimulatedStateMachine, IDisposable
{
    /// <summary>Every how many entries the digest is kept for the fleet's comparison, as in the state machine's own tests.</summary>
    private const int DigestInterval = 64;

    private readonly TestMembers _members;
    private readonly PlantedBug _bug;
    private readonly ICollection<ProductionVaultState> _opened;
    private readonly VaultStateMachine _state;

    private ProductionVaultState(TestMembers members, PlantedBug bug, ICollection<ProductionVaultState> opened)
    {
        _members = members;
        _bug = bug;
        _opened = opened;
        _state = members.OpenInMemoryState(DigestInterval);
        opened.Add(this);
    }

    /// <summary>An empty vault for a member of <paramref name="members"/>' fleet; it and its copies are added to <paramref name="opened"/>, to be disposed.</summary>
    public static ProductionVaultState Create(TestMembers members, PlantedBug bug, ICollection<ProductionVaultState> opened) =>
        new(members, bug, opened);

    /// <summary>The chain a vault that applied nothing reports.</summary>
    public static ulong InitialChain { get; } = ChainOf(StateDigestChain.Genesis());

    public ulong AppliedIndex => _state.AppliedIndex;

    /// <summary>The production digest chain, folded to 64 bits for the <see cref="SafetyChecker"/>.</summary>
    public ulong Chain => ChainOf(_state.Digest);

    /// <summary>The user's row, as a read served after a ReadIndex barrier sees it.</summary>
    public StoredRecord? Read(UserIdentity user) => _state.Read(user);

    public byte[] Apply(ulong index, ReadOnlySpan<byte> command)
    {
        if (_bug == PlantedBug.ChargeDoesNotCount && UncountedCharge(command) is { } answer)
        {
            _state.Apply(index, []);
            return answer;
        }

        return _state.Apply(index, command);
    }

    /// <summary>
    /// The daemon's batched apply (one transaction per batch). The planted bug needs the state before each
    /// charge, so with it the batch is applied entry by entry.
    /// </summary>
    public IReadOnlyList<byte[]?> ApplyBatch(IReadOnlyList<LogEntry> entries) =>
        _bug == PlantedBug.None
            ? _state.ApplyBatch(entries)
            : [.. entries.Select(e => e.Kind == LogEntryKind.Command ? Apply(e.Index, e.Data.Span) : null)];

    public byte[] CreateSnapshot(out ulong index) => _state.CreateSnapshot(out index);

    public ulong WriteSnapshot(Stream destination) => _state.WriteSnapshot(destination);

    public void RestoreSnapshot(ulong index, Stream source) => _state.RestoreSnapshot(index, source);

    public void RestoreSnapshot(ulong index, ReadOnlySpan<byte> data) => _state.RestoreSnapshot(index, data);

    public ISimulatedStateMachine Clone()
    {
        var copy = new ProductionVaultState(_members, _bug, _opened);
        if (AppliedIndex > 0)
        {
            copy.RestoreSnapshot(AppliedIndex, CreateSnapshot(out _));
        }

        return copy;
    }

    public void Dispose() => _state.Dispose();

    private static ulong ChainOf(byte[] digest) => BinaryPrimitives.ReadUInt64LittleEndian(digest);

    /// <summary>The answer the real rule gives a charge that would count, or null for any other entry.</summary>
    private byte[]? UncountedCharge(ReadOnlySpan<byte> entry)
    {
        if (SignedCommand.TryDecode(entry) is not { } signed || VaultCommandCodec.Decode(signed.Body) is not ChargeGuessCommand charge)
        {
            return null;
        }

        var (_, result) = RecordTransitions.Apply(_state.Read(charge.User), charge);
        return result.Outcome == CommandOutcome.Charged ? VaultCommandCodec.EncodeResult(result) : null;
    }
}
