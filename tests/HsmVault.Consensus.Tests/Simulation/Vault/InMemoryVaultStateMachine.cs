using System.Text;
using HsmVault.Vault;
using HsmVault.Vault.State;

namespace HsmVault.Consensus.Tests.Simulation.Vault;

/// <summary>
/// The vault's replicated state for the simulator: the same commands, codec and <see cref="RecordTransitions"/>
/// rule as the daemon's SQLite <c>VaultStateMachine</c>, kept in a dictionary. Deterministic: the snapshot
/// writes the users in ordinal order.
/// </summary>
internal sealed class InMemoryVaultStateMachine(PlantedBug bug = PlantedBug.None) : ISimulatedStateMachine
{
    private readonly Dictionary<UserIdentity, StoredRecord> _records = [];

    public ulong AppliedIndex { get; private set; }

    public ulong Chain { get; private set; } = ISimulatedStateMachine.InitialChain;

    /// <summary>The user's row, as a read served after a ReadIndex barrier sees it.</summary>
    public StoredRecord? Read(UserIdentity user) => _records.GetValueOrDefault(user);

    public byte[] Apply(ulong index, ReadOnlySpan<byte> command)
    {
        if (index <= AppliedIndex)
        {
            throw new InvalidOperationException($"Apply of {index} after {AppliedIndex}.");
        }

        AppliedIndex = index;
        Chain = CounterStateMachine.Mix(CounterStateMachine.Mix(Chain, index), command);
        if (VaultCommandCodec.Decode(command) is not RecordCommand decoded)
        {
            return [];
        }

        var (next, result) = RecordTransitions.Apply(_records.GetValueOrDefault(decoded.User), decoded);
        var dropCharge = bug == PlantedBug.ChargeDoesNotCount && result.Outcome == CommandOutcome.Charged;
        if (next is not null && !dropCharge)
        {
            _records[decoded.User] = next;
        }

        return VaultCommandCodec.EncodeResult(result);
    }

    public byte[] CreateSnapshot(out ulong index)
    {
        index = AppliedIndex;
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true))
        {
            writer.Write(AppliedIndex);
            writer.Write(Chain);
            writer.Write(_records.Count);
            var ordered = _records.Values
                .OrderBy(r => r.User.Tenant, StringComparer.Ordinal)
                .ThenBy(r => r.User.UserId, StringComparer.Ordinal);
            foreach (var record in ordered)
            {
                writer.Write(record.User.Tenant);
                writer.Write(record.User.UserId);
                writer.Write(record.Version);
                writer.Write((byte)record.State);
                writer.Write(record.GuessLimit);
                writer.Write(record.GuessesUsed);
                writer.Write(record.AttemptSerial);
                writer.Write(record.LastResetSerial);
                writer.Write(record.RecentAttemptIds?.Length ?? -1);
                writer.Write(record.RecentAttemptIds ?? []);
                writer.Write(record.SealedRecord?.Length ?? -1);
                if (record.SealedRecord is { } sealedRecord)
                {
                    writer.Write(sealedRecord);
                }
            }
        }

        return stream.ToArray();
    }

    public void RestoreSnapshot(ulong index, ReadOnlySpan<byte> data)
    {
        using var stream = new MemoryStream(data.ToArray(), writable: false);
        using var reader = new BinaryReader(stream, Encoding.UTF8);
        AppliedIndex = reader.ReadUInt64();
        Chain = reader.ReadUInt64();
        _records.Clear();
        for (var count = reader.ReadInt32(); count > 0; count--)
        {
            var user = new UserIdentity(reader.ReadString(), reader.ReadString());
            var version = reader.ReadInt64();
            var state = (RecordState)reader.ReadByte();
            var limit = reader.ReadInt32();
            var used = reader.ReadInt32();
            var attemptSerial = reader.ReadInt64();
            var lastResetSerial = reader.ReadInt64();
            var idsLength = reader.ReadInt32();
            var attemptIds = idsLength < 0 ? null : reader.ReadBytes(idsLength);
            var length = reader.ReadInt32();
            var sealedRecord = length < 0 ? null : reader.ReadBytes(length);
            _records[user] = new StoredRecord(user, version, state, limit, used, sealedRecord, attemptSerial, lastResetSerial, attemptIds);
        }

        if (AppliedIndex != index)
        {
            throw new InvalidDataException($"Snapshot for {index} holds the state at {AppliedIndex}.");
        }
    }

    public ISimulatedStateMachine Clone()
    {
        var copy = new InMemoryVaultStateMachine(bug);
        copy.RestoreSnapshot(AppliedIndex, CreateSnapshot(out _));
        return copy;
    }
}
