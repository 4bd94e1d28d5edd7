using HsmVault.Protocol;
using HsmVault.Protocol.Moves;
using System.Text;
using HsmVault.Consensus;
using HsmVault.Vault.Audit;
using HsmVault.Vault.Signing;
using Microsoft.Data.Sqlite;

namespace HsmVault.Vault.State;

/// <summary>
/// The vault's replicated state: one row per user, the registration tickets already used, and
/// the running digest of what was applied, kept in SQLite and changed only by applying
/// committed entries in log order. Each batch of applied entries is one transaction that also
/// records the applied index, so after a crash the state and the index agree and the log is
/// replayed from the next entry.
/// </summary>
/// <remarks>
/// <para>Every entry is checked here, where it takes effect, not only where it was decided: it
/// must be a command signed by a fleet member's token-held identity key
/// (<see cref="CommandVerifier"/>); anything else is refused, audited on every member, and
/// changes nothing. The record rules are <see cref="RecordTransitions"/>; the one rule decided
/// here is that a registration ticket registers once, fleet-wide.</para>
/// <para>Nothing stored here lets anyone test password guesses offline: records are sealed by the
/// token's record key, and counts, versions and ticket nonces are not secrets; secure_delete
/// overwrites the pages of destroyed records.</para>
/// <para>Why one transaction per batch, and no fsync of its own (WAL with synchronous=NORMAL): this
/// database is not the durable record; the Raft log and snapshot are. An entry is acknowledged
/// to a client only after it is committed, i.e. fsynced into the logs of a majority, and every
/// member's state is a deterministic function of its log: the snapshot the host persists (and
/// fsyncs) before compacting is taken from this state, and at start the host restores that
/// snapshot when this database is behind it, then replays the log past <see cref="AppliedIndex"/>.
/// So whatever a crash takes from this file — a kill -9 takes nothing (the WAL is in the
/// kernel's page cache), a power cut may take the last transactions, never half of one — the
/// state and its applied index go back together and are rebuilt exactly, including every guess
/// charged: a charge can be lost from this file but not from the log, and nothing is ever
/// refunded by replay. An fsync per entry bought nothing but latency.</para>
/// </remarks>
public sealed class VaultStateMachine : IReplicatedStateMachine, IDisposable
{
    private const string DatabaseFileName = "vault.db";
    /// <summary>Format 4: each recent charge keeps the guesses it left (<see cref="RecentCharges"/>).</summary>
    private const byte SnapshotFormatVersion = 4;

    /// <summary>Snapshots of this format (recent charges as bare attempt ids, which restore as none) still restore.</summary>
    private const byte SnapshotFormatWithBareAttemptIds = 3;

    /// <summary>Snapshots of this format (no registration history, bare attempt ids) still restore.</summary>
    private const byte SnapshotFormatWithoutHistory = 2;

    /// <summary>
    /// Largest sealed record a snapshot row may carry: far above any real one (the client API caps a request at
    /// 16 KiB), so that a malformed length is refused before it is allocated.
    /// </summary>
    private const int MaxSealedRecordBytes = 1024 * 1024;

    /// <summary>How many published digests are kept to compare late reports against.</summary>
    private const int DigestsKept = 1024;

    private readonly SqliteConnectionStringBuilder _database;
    private readonly SqliteConnection _connection;
    private readonly CommandVerifier _verifier;
    private readonly VaultAudit _audit;
    private readonly int _digestInterval;
    private readonly int _memberCount;
    private readonly Lock _lock = new();
    private readonly SortedDictionary<ulong, Dictionary<string, byte[]>> _digestReports = [];
    private readonly Dictionary<string, SqliteCommand> _statements = [];
    private ulong _appliedIndex;
    private byte[] _digest;
    private string? _divergence;

    /// <summary>Opens (or creates) the state in <paramref name="dataDirectory"/>.</summary>
    /// <param name="dataDirectory">Where vault.db lives.</param>
    /// <param name="verifier">Checks every entry's signer at apply.</param>
    /// <param name="audit">Receives an event for every change and every refusal.</param>
    /// <param name="digestInterval">Every how many entries the digest is kept for comparison.</param>
    /// <param name="memberCount">Members in the fleet: a digest reported by a majority of them is the fleet's.</param>
    public VaultStateMachine(string dataDirectory, CommandVerifier verifier, VaultAudit audit, int digestInterval, int memberCount)
        : this(OnDisk(dataDirectory), verifier, audit, digestInterval, memberCount)
    {
    }

    private VaultStateMachine(SqliteConnectionStringBuilder database, CommandVerifier verifier, VaultAudit audit, int digestInterval, int memberCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(digestInterval, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(memberCount, 1);
        _verifier = verifier;
        _audit = audit;
        _digestInterval = digestInterval;
        _memberCount = memberCount;
        _database = database;
        _connection = OpenDatabase(database);
        _appliedIndex = ReadMeta("applied_index") is long index ? (ulong)index : 0;
        _digest = ReadMeta("digest") as byte[] ?? StateDigestChain.Genesis();
        _divergence = ReadMeta("divergence") as string;
    }

    /// <summary>Opens (or creates) the database with its settings and tables.</summary>
    private static SqliteConnection OpenDatabase(SqliteConnectionStringBuilder database)
    {
        var connection = new SqliteConnection(database.ToString());
        connection.Open();
        Execute(connection, "PRAGMA journal_mode=WAL;");
        Execute(connection, "PRAGMA synchronous=NORMAL;"); // Durability comes from the Raft log; see the remarks.
        Execute(connection, "PRAGMA secure_delete=ON;");
        Execute(connection, """
            CREATE TABLE IF NOT EXISTS records (
                tenant TEXT NOT NULL,
                user_id TEXT NOT NULL,
                version INTEGER NOT NULL,
                state INTEGER NOT NULL,
                guess_limit INTEGER NOT NULL,
                guesses_used INTEGER NOT NULL,
                sealed BLOB,
                attempt_serial INTEGER NOT NULL,
                last_reset_serial INTEGER NOT NULL,
                recent_attempt_ids BLOB, -- RecentCharges: attempt ids with the guesses each left (bare ids in older states)
                history BLOB,
                PRIMARY KEY (tenant, user_id)) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS used_tickets (nonce BLOB PRIMARY KEY) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS digests (idx INTEGER PRIMARY KEY, digest BLOB NOT NULL) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
            """);
        AddHistoryColumn(connection);
        return connection;
    }

    /// <summary>A state made before registration histories were kept gains their column (empty for its rows).</summary>
    private static void AddHistoryColumn(SqliteConnection connection)
    {
        using var columns = connection.CreateCommand();
        columns.CommandText = "SELECT COUNT(*) FROM pragma_table_info('records') WHERE name = 'history'";
        if ((long)columns.ExecuteScalar()! == 0)
        {
            Execute(connection, "ALTER TABLE records ADD COLUMN history BLOB");
        }
    }

    /// <summary>
    /// Adds <paramref name="count"/> synthetic live users (<c>seeded-0</c>, <c>seeded-1</c>, …) of
    /// <paramref name="tenant"/> to a state that has applied nothing yet, in one transaction: for benchmarks and
    /// load tests of large states without registering each user through the API. The rows depend on the
    /// arguments alone, so every member of a new fleet seeded alike holds the same state (its snapshots and
    /// digests agree). Their sealed records are filler that no token can open: these users are looked up,
    /// counted and carried in snapshots like any other, but cannot be recovered.
    /// </summary>
    /// <exception cref="InvalidOperationException">The state has applied entries already: seeding it now would make this member differ from the others.</exception>
    public static void SeedSyntheticUsers(string dataDirectory, string tenant, int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        using var connection = OpenDatabase(OnDisk(dataDirectory));
        using (var applied = connection.CreateCommand())
        {
            applied.CommandText = "SELECT value FROM meta WHERE key = 'applied_index'";
            if (applied.ExecuteScalar() is long index && index > 0)
            {
                throw new InvalidOperationException(
                    $"the state in '{dataDirectory}' has applied {index} entries; seed only a new fleet's members, before their first start");
            }
        }

        using var transaction = connection.BeginTransaction();
        using var insert = connection.CreateCommand();
        insert.Transaction = transaction;
        insert.CommandText = $"""
            INSERT OR REPLACE INTO records ({RecordColumns})
            VALUES ($t, $u, 1, $s, $l, 0, $b, 0, 0, NULL, NULL)
            """;
        insert.Parameters.AddWithValue("$t", tenant);
        var user = insert.Parameters.Add("$u", SqliteType.Text);
        insert.Parameters.AddWithValue("$s", (int)RecordState.Live);
        insert.Parameters.AddWithValue("$l", 10);
        var sealedRecord = insert.Parameters.Add("$b", SqliteType.Blob);
        for (var i = 0; i < count; i++)
        {
            var id = $"seeded-{i}";
            user.Value = id;
            // About the size of a real sealed record (OPAQUE envelope and keys, encrypted secret, GCM tag).
            var filler = System.Security.Cryptography.SHA512.HashData(Encoding.UTF8.GetBytes(id));
            byte[] blob = [.. filler, .. filler, .. filler, .. filler, .. filler];
            sealedRecord.Value = blob;
            insert.ExecuteNonQuery();
        }

        transaction.Commit();
    }

    /// <summary>
    /// Opens an empty state in a private in-memory SQLite database, for the deterministic simulator: the same
    /// schema, rules and snapshot format as on disk, gone when disposed.
    /// </summary>
    public static VaultStateMachine OpenInMemory(CommandVerifier verifier, VaultAudit audit, int digestInterval, int memberCount) =>
        new(new SqliteConnectionStringBuilder { DataSource = ":memory:", Pooling = false }, verifier, audit, digestInterval, memberCount);

    private static SqliteConnectionStringBuilder OnDisk(string dataDirectory)
    {
        Directory.CreateDirectory(dataDirectory);
        return new() { DataSource = Path.Combine(dataDirectory, DatabaseFileName), Pooling = false };
    }

    /// <summary>The running digest of everything applied up to <see cref="AppliedIndex"/> (<see cref="StateDigestChain"/>).</summary>
    public byte[] Digest
    {
        get
        {
            lock (_lock)
            {
                return [.. _digest];
            }
        }
    }

    /// <summary>Index of the last log entry applied (0: none).</summary>
    public ulong AppliedIndex
    {
        get
        {
            lock (_lock)
            {
                return _appliedIndex;
            }
        }
    }

    /// <summary>
    /// Null while this member's state agrees with the fleet's; otherwise what disagreed. Once set
    /// it stays set, across restarts, until an operator follows the disaster-recovery procedure:
    /// the member keeps following the log but stops serving.
    /// </summary>
    public string? Divergence
    {
        get
        {
            lock (_lock)
            {
                return _divergence;
            }
        }
    }

    /// <summary>The latest digest this member should publish: the one at the last multiple of the interval it applied.</summary>
    public (ulong Index, byte[] Digest)? LatestCheckpointDigest()
    {
        lock (_lock)
        {
            using var command = _connection.CreateCommand();
            command.CommandText = "SELECT idx, digest FROM digests ORDER BY idx DESC LIMIT 1";
            using var reader = command.ExecuteReader();
            return reader.Read() ? ((ulong)reader.GetInt64(0), (byte[])reader[1]) : null;
        }
    }

    /// <summary>
    /// Applies the committed entry at <paramref name="index"/>. Entries at or below the applied
    /// index were applied before a restart and are skipped, so replay is idempotent.
    /// </summary>
    /// <returns>The encoded <see cref="CommandResult"/>; empty for a skipped or empty entry.</returns>
    public byte[] Apply(ulong index, ReadOnlySpan<byte> command) =>
        ApplyBatch([new LogEntry(index, 0, LogEntryKind.Command, command.ToArray())])[0]!;

    /// <summary>
    /// Applies consecutive committed entries as one transaction (see the remarks on durability).
    /// Entries at or below the applied index were applied before a restart and are skipped.
    /// </summary>
    /// <returns>Per entry: the encoded <see cref="CommandResult"/> of a command (empty for a skipped or empty one); null for any other kind.</returns>
    public IReadOnlyList<byte[]?> ApplyBatch(IReadOnlyList<LogEntry> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);

        // Verified outside the lock: signature checks are pure and the slowest part of apply.
        var verified = new (VerifiedCommand? Command, CommandRefusal? Refusal)[entries.Count];
        for (var i = 0; i < entries.Count; i++)
        {
            var data = entries[i].Data.Span;
            if (entries[i].Kind == LogEntryKind.Command && !data.IsEmpty)
            {
                verified[i].Command = _verifier.Verify(data, out verified[i].Refusal);
            }
        }

        var results = new byte[]?[entries.Count];
        lock (_lock)
        {
            var digest = _digest;
            var applied = _appliedIndex;
            using var transaction = _connection.BeginTransaction();
            for (var i = 0; i < entries.Count; i++)
            {
                var entry = entries[i];
                if (entry.Kind != LogEntryKind.Command)
                {
                    continue;
                }

                if (entry.Index <= applied)
                {
                    results[i] = [];
                    continue;
                }

                var result = verified[i].Command?.Command switch
                {
                    RecordCommand c => ApplyRecordCommand(entry.Index, verified[i].Command!.Member, c, transaction),
                    StateDigestCommand c => CompareDigest(entry.Index, verified[i].Command!.Member, c, transaction),
                    _ when verified[i].Refusal is not null => Refuse(entry.Index, verified[i].Refusal!),
                    _ => null,
                };
                var encoded = result is null ? [] : VaultCommandCodec.EncodeResult(result);
                digest = StateDigestChain.Next(digest, entry.Index, entry.Data.Span, encoded);
                if (entry.Index % (ulong)_digestInterval == 0)
                {
                    KeepDigest(entry.Index, digest, transaction);
                }

                applied = entry.Index;
                results[i] = encoded;
            }

            if (applied > _appliedIndex)
            {
                WriteMeta("digest", digest, transaction);
                WriteMeta("applied_index", (long)applied, transaction);
                transaction.Commit();
                _digest = digest;
                _appliedIndex = applied;
            }

            return results;
        }
    }

    /// <summary>The user's row as of the applied index, or null when there has never been one.</summary>
    public StoredRecord? Read(UserIdentity user)
    {
        lock (_lock)
        {
            return ReadLocked(user, transaction: null);
        }
    }

    /// <summary>How many user rows the state holds (live, destroyed and deleted alike).</summary>
    public long CountRecords()
    {
        lock (_lock)
        {
            using var command = _connection.CreateCommand();
            command.CommandText = "SELECT COUNT(*) FROM records";
            return (long)command.ExecuteScalar()!;
        }
    }

    /// <summary>Serialises the state, as of the applied index, for a Raft snapshot (in memory: for tests and small states).</summary>
    public byte[] CreateSnapshot(out ulong index)
    {
        using var stream = new MemoryStream();
        index = WriteSnapshot(stream);
        return stream.ToArray();
    }

    /// <summary>
    /// Serialises the state, as of the applied index, into <paramref name="destination"/>: rows stream from SQLite in key
    /// order, so the state is never held whole in memory.
    /// </summary>
    /// <returns>The applied index the snapshot is taken at.</returns>
    public ulong WriteSnapshot(Stream destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        lock (_lock)
        {
            WriteSnapshot(_connection, null, _digest, destination);
            return _appliedIndex;
        }
    }

    /// <summary>
    /// Pins the state as of the applied index in a read transaction of a connection of its own: in WAL mode it sees
    /// the database as it is now however many batches commit meanwhile, so the snapshot can be written on another
    /// thread while this one goes on applying. (A state in memory has no second connection: it is serialized now.)
    /// </summary>
    public IStateSnapshot CaptureSnapshot()
    {
        lock (_lock)
        {
            if (_database.DataSource == ":memory:")
            {
                return new BufferedStateSnapshot(_appliedIndex, CreateSnapshot(out _));
            }

            var connection = new SqliteConnection(new SqliteConnectionStringBuilder(_database.ToString()) { Mode = SqliteOpenMode.ReadOnly }.ToString());
            try
            {
                connection.Open();
                var transaction = connection.BeginTransaction(deferred: true);
                using (var first = connection.CreateCommand())
                {
                    // A deferred transaction takes its view of the database at its first read: now, between two batches.
                    first.Transaction = transaction;
                    first.CommandText = "SELECT value FROM meta WHERE key = 'applied_index'";
                    if (first.ExecuteScalar() is not long pinned || (ulong)pinned != _appliedIndex)
                    {
                        transaction.Dispose();
                        throw new InvalidOperationException($"vault.db's applied index is not the state's {_appliedIndex}");
                    }
                }

                return new PinnedSnapshot(_appliedIndex, _digest, connection, transaction);
            }
            catch
            {
                connection.Dispose();
                throw;
            }
        }
    }

    private static void WriteSnapshot(SqliteConnection connection, SqliteTransaction? transaction, byte[] digest, Stream destination)
    {
        using var writer = new BinaryWriter(destination, Encoding.UTF8, leaveOpen: true);
        writer.Write(SnapshotFormatVersion);
        writer.Write(digest);
        using (var command = connection.CreateCommand())
        {
            command.Transaction = transaction;
            command.CommandText = $"SELECT {RecordColumns} FROM records ORDER BY tenant, user_id";
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                writer.Write(true);
                WriteSnapshotRecord(writer, ToRecord(reader));
            }

            writer.Write(false);
        }

        using (var command = connection.CreateCommand())
        {
            command.Transaction = transaction;
            command.CommandText = "SELECT nonce FROM used_tickets ORDER BY nonce";
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                writer.Write(true);
                writer.Write((byte[])reader[0]);
            }

            writer.Write(false);
        }
    }

    /// <summary>The state at one applied index, in a read transaction that keeps that view until disposed.</summary>
    private sealed class PinnedSnapshot(ulong index, byte[] digest, SqliteConnection connection, SqliteTransaction transaction) : IStateSnapshot
    {
        public ulong Index { get; } = index;

        public void WriteTo(Stream destination) => WriteSnapshot(connection, transaction, digest, destination);

        public void Dispose()
        {
            transaction.Dispose();
            connection.Dispose();
        }
    }

    /// <summary>Replaces the whole state with a snapshot taken at <paramref name="index"/> (in memory: for tests and small states).</summary>
    public void RestoreSnapshot(ulong index, ReadOnlySpan<byte> data)
    {
        using var stream = new MemoryStream(data.ToArray(), writable: false);
        RestoreSnapshot(index, stream);
    }

    /// <summary>
    /// Replaces the whole state with a snapshot taken at <paramref name="index"/>, read from <paramref name="source"/>
    /// row by row into one transaction: a defect anywhere throws <see cref="InvalidDataException"/> and rolls it all
    /// back, so the state stays as it was.
    /// </summary>
    public void RestoreSnapshot(ulong index, Stream source)
    {
        ArgumentNullException.ThrowIfNull(source);
        lock (_lock)
        {
            using var transaction = _connection.BeginTransaction();
            using (var clear = _connection.CreateCommand())
            {
                clear.Transaction = transaction;
                clear.CommandText = "DELETE FROM records; DELETE FROM used_tickets; DELETE FROM digests;";
                clear.ExecuteNonQuery();
            }

            using var write = CreateWriteCommand(transaction);
            var digest = ReadSnapshot(source, record => WriteRecord(write, record), nonce => UseTicket(nonce, transaction));
            WriteMeta("digest", digest, transaction);
            if (index % (ulong)_digestInterval == 0)
            {
                KeepDigest(index, digest, transaction);
            }

            WriteMeta("applied_index", (long)index, transaction);
            transaction.Commit();
            _digest = digest;
            _appliedIndex = index;
        }
    }

    /// <summary>
    /// Disaster recovery only, with the member stopped: forgets a recorded divergence. The
    /// operator has decided which state the fleet continues from (see the README).
    /// </summary>
    /// <returns>The divergence that was recorded, or null.</returns>
    public static string? ClearDivergence(string dataDirectory)
    {
        var path = Path.Combine(dataDirectory, DatabaseFileName);
        if (!File.Exists(path))
        {
            return null;
        }

        using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString());
        connection.Open();
        using var read = connection.CreateCommand();
        read.CommandText = "SELECT value FROM meta WHERE key = 'divergence'";
        var divergence = read.ExecuteScalar() as string;
        using var delete = connection.CreateCommand();
        delete.CommandText = "DELETE FROM meta WHERE key = 'divergence'";
        delete.ExecuteNonQuery();
        return divergence;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        lock (_lock)
        {
            foreach (var statement in _statements.Values)
            {
                statement.Dispose();
            }

            _connection.Dispose();
        }
    }

    private CommandResult ApplyRecordCommand(ulong index, string member, RecordCommand command, SqliteTransaction transaction)
    {
        // A registration ticket registers once, fleet-wide: a replayed FinishRegistration must
        // not put a record back with its count at zero.
        if (command is RegisterCommand register && IsTicketUsed(register.RegistrationNonce, transaction))
        {
            _audit.TicketReused(index, member, register.User);
            return new CommandResult(CommandOutcome.TicketAlreadyUsed);
        }

        var (next, result) = RecordTransitions.Apply(ReadLocked(command.User, transaction), command);
        if (next is not null)
        {
            WriteLocked(next, transaction);
        }

        switch (result.Outcome)
        {
            case CommandOutcome.Registered when next!.State == RecordState.Pending:
                UseTicket(((RegisterCommand)command).RegistrationNonce, transaction);
                _audit.MovePending(index, member, command.User);
                break;
            case CommandOutcome.Registered:
                UseTicket(((RegisterCommand)command).RegistrationNonce, transaction);
                _audit.Registered(index, member, command.User, next!.GuessLimit);
                break;
            case CommandOutcome.Activated:
                _audit.MovedIn(index, member, command.User, MoveReceipt.Decode(((ActivateCommand)command).Receipt).FromFleet);
                break;
            case CommandOutcome.Replaced:
                UseTicket(((RegisterCommand)command).RegistrationNonce, transaction);
                _audit.Replaced(index, member, command.User, next!.GuessLimit);
                break;
            case CommandOutcome.Charged:
                _audit.Charged(index, member, command.User, result.AttemptSerial, result.GuessesRemaining);
                break;
            case CommandOutcome.Reset:
                _audit.Recovered(index, member, command.User, ((ResetGuessesCommand)command).AttemptSerial, result.GuessesRemaining);
                break;
            case CommandOutcome.Destroyed when next is not null:
                _audit.Destroyed(index, member, command.User);
                break;
            case CommandOutcome.Deleted:
                _audit.Deleted(index, member, command.User);
                break;
        }

        return result;
    }

    private CommandResult Refuse(ulong index, CommandRefusal refusal)
    {
        _audit.CommandRefused(index, refusal.Member, refusal.Reason);
        return new CommandResult(CommandOutcome.Refused);
    }

    /// <summary>
    /// Records <paramref name="member"/>'s digest at the reported index; once a majority of the
    /// fleet reported the same digest, that is the fleet's state, and a member whose own digest
    /// differs stops serving. Reports are compared as they are applied, so every member sees
    /// them in the same order; only the conclusion about itself differs between members.
    /// </summary>
    private CommandResult CompareDigest(ulong index, string member, StateDigestCommand report, SqliteTransaction transaction)
    {
        if (!_digestReports.TryGetValue(report.Index, out var reports))
        {
            reports = [];
            _digestReports[report.Index] = reports;
            while (_digestReports.Count > DigestsKept)
            {
                _digestReports.Remove(_digestReports.Keys.First());
            }
        }

        reports[member] = report.Digest;
        var majority = reports.Values
            .GroupBy(Convert.ToHexString)
            .FirstOrDefault(group => group.Count() > _memberCount / 2);
        if (majority is null)
        {
            return new CommandResult(CommandOutcome.DigestChecked);
        }

        var fleetDigest = majority.First();
        if (!fleetDigest.AsSpan().SequenceEqual(report.Digest))
        {
            _audit.MemberDiverged(report.Index, member);
        }

        var own = ReadDigest(report.Index, transaction);
        if (_divergence is null && own is not null && !own.AsSpan().SequenceEqual(fleetDigest))
        {
            _divergence = $"at index {report.Index} this member's digest is {Convert.ToHexStringLower(own)[..16]}…, " +
                $"the majority's {Convert.ToHexStringLower(fleetDigest)[..16]}… (found at index {index})";
            WriteMeta("divergence", _divergence, transaction);
            _audit.Diverged(report.Index, _divergence);
        }

        return new CommandResult(CommandOutcome.DigestChecked);
    }

    private void KeepDigest(ulong index, byte[] digest, SqliteTransaction transaction)
    {
        var command = Statement("INSERT OR REPLACE INTO digests (idx, digest) VALUES ($i, $d); DELETE FROM digests WHERE idx <= $old", transaction);
        command.Parameters.AddWithValue("$i", (long)index);
        command.Parameters.AddWithValue("$d", digest);
        command.Parameters.AddWithValue("$old", (long)index - ((long)_digestInterval * DigestsKept));
        command.ExecuteNonQuery();
    }

    private byte[]? ReadDigest(ulong index, SqliteTransaction transaction)
    {
        var command = Statement("SELECT digest FROM digests WHERE idx = $i", transaction);
        command.Parameters.AddWithValue("$i", (long)index);
        return command.ExecuteScalar() as byte[];
    }

    private bool IsTicketUsed(byte[] nonce, SqliteTransaction transaction)
    {
        var command = Statement("SELECT 1 FROM used_tickets WHERE nonce = $n", transaction);
        command.Parameters.AddWithValue("$n", nonce);
        return command.ExecuteScalar() is not null;
    }

    private void UseTicket(byte[] nonce, SqliteTransaction transaction)
    {
        var command = Statement("INSERT OR IGNORE INTO used_tickets (nonce) VALUES ($n)", transaction);
        command.Parameters.AddWithValue("$n", nonce);
        command.ExecuteNonQuery();
    }

    private static void WriteSnapshotRecord(BinaryWriter writer, StoredRecord record)
    {
        writer.Write(record.User.Tenant);
        writer.Write(record.User.UserId);
        writer.Write(record.Version);
        writer.Write((byte)record.State);
        writer.Write(RecordLimits.CountByte(record.GuessLimit));
        writer.Write(RecordLimits.CountByte(record.GuessesUsed));
        writer.Write(record.AttemptSerial);
        writer.Write(record.LastResetSerial);
        writer.Write(record.RecentCharges?.Length ?? 0);
        writer.Write(record.RecentCharges ?? []);
        writer.Write(record.SealedRecord?.Length ?? -1);
        if (record.SealedRecord is not null)
        {
            writer.Write(record.SealedRecord);
        }

        writer.Write(record.History?.Length ?? 0);
        writer.Write(record.History ?? []);
    }

    /// <summary>
    /// Reads a snapshot, handing each row and ticket on as it is parsed (the caller writes them inside a transaction it
    /// commits only if the whole snapshot parses); any defect throws <see cref="InvalidDataException"/>.
    /// </summary>
    /// <returns>The state digest the snapshot carries.</returns>
    private static byte[] ReadSnapshot(Stream source, Action<StoredRecord> record, Action<byte[]> ticket)
    {
        using var reader = new BinaryReader(source, Encoding.UTF8, leaveOpen: true);
        try
        {
            var format = reader.ReadByte();
            if (format is not (SnapshotFormatVersion or SnapshotFormatWithBareAttemptIds or SnapshotFormatWithoutHistory))
            {
                throw new InvalidDataException("vault snapshot has an unknown format version");
            }

            var digest = ReadExactly(reader, 32);
            while (reader.ReadBoolean())
            {
                if (!UserIdentity.TryCreate(reader.ReadString(), reader.ReadString(), out var user, out var problem))
                {
                    throw new InvalidDataException($"vault snapshot names an invalid user: {problem}");
                }

                var version = reader.ReadInt64();
                var state = (RecordState)reader.ReadByte();
                int limit = reader.ReadByte();
                int used = reader.ReadByte();
                var attemptSerial = reader.ReadInt64();
                var lastResetSerial = reader.ReadInt64();
                var recentChargesLength = reader.ReadInt32();
                if (!RecentCharges.IsValidLength(recentChargesLength))
                {
                    throw new InvalidDataException($"vault snapshot has invalid recent charges for {user}");
                }

                var recentCharges = RecentCharges.Normalize(recentChargesLength == 0 ? null : ReadExactly(reader, recentChargesLength));
                var length = reader.ReadInt32();
                if (!Enum.IsDefined(state) || !RecordLimits.IsGuessLimit(limit) || used > limit
                    || attemptSerial < 0 || lastResetSerial < 0 || lastResetSerial > attemptSerial
                    || length < -1 || length > MaxSealedRecordBytes || (length < 0) == (state is RecordState.Live or RecordState.Pending))
                {
                    throw new InvalidDataException($"vault snapshot has an invalid row for {user}");
                }

                var sealedRecord = length < 0 ? null : ReadExactly(reader, length);
                var history = format == SnapshotFormatWithoutHistory ? null : ReadHistory(reader, user);
                record(new StoredRecord(user, version, state, limit, used, sealedRecord, attemptSerial, lastResetSerial, recentCharges, history));
            }

            while (reader.ReadBoolean())
            {
                ticket(ReadExactly(reader, UserIdentity.RegistrationNonceBytes));
            }

            if (source.ReadByte() != -1)
            {
                throw new InvalidDataException("vault snapshot has trailing bytes");
            }

            return digest;
        }
        catch (Exception e) when (e is EndOfStreamException or FormatException or IOException)
        {
            throw new InvalidDataException("vault snapshot is truncated or malformed", e);
        }
    }

    /// <summary>A row's history: empty (none kept) or one canonical <see cref="RegistrationHistory"/>.</summary>
    private static byte[]? ReadHistory(BinaryReader reader, UserIdentity user)
    {
        var length = reader.ReadInt32();
        if (length is < 0 or > 4096)
        {
            throw new InvalidDataException($"vault snapshot has an invalid history for {user}");
        }

        if (length == 0)
        {
            return null;
        }

        var history = ReadExactly(reader, length);
        try
        {
            RegistrationHistory.Decode(history);
        }
        catch (FormatException e)
        {
            throw new InvalidDataException($"vault snapshot has an invalid history for {user}: {e.Message}", e);
        }

        return history;
    }

    private static byte[] ReadExactly(BinaryReader reader, int length)
    {
        var bytes = reader.ReadBytes(length);
        return bytes.Length == length ? bytes : throw new EndOfStreamException();
    }

    private const string RecordColumns = "tenant, user_id, version, state, guess_limit, guesses_used, sealed, attempt_serial, last_reset_serial, recent_attempt_ids, history";

    private StoredRecord? ReadLocked(UserIdentity user, SqliteTransaction? transaction)
    {
        var command = Statement($"SELECT {RecordColumns} FROM records WHERE tenant = $t AND user_id = $u", transaction);
        command.Parameters.AddWithValue("$t", user.Tenant);
        command.Parameters.AddWithValue("$u", user.UserId);
        using var reader = command.ExecuteReader();
        return reader.Read() ? ToRecord(reader) : null;
    }

    private static StoredRecord ToRecord(SqliteDataReader reader) => new(
        new UserIdentity(reader.GetString(0), reader.GetString(1)),
        reader.GetInt64(2),
        (RecordState)reader.GetInt32(3),
        reader.GetInt32(4),
        reader.GetInt32(5),
        reader.IsDBNull(6) ? null : (byte[])reader[6],
        reader.GetInt64(7),
        reader.GetInt64(8),
        reader.IsDBNull(9) ? null : RecentCharges.Normalize((byte[])reader[9]),
        reader.IsDBNull(10) ? null : (byte[])reader[10]);

    private void WriteLocked(StoredRecord record, SqliteTransaction transaction)
    {
        if (!_statements.TryGetValue(nameof(WriteLocked), out var command))
        {
            command = CreateWriteCommand(transaction);
            _statements[nameof(WriteLocked)] = command;
        }

        command.Transaction = transaction;
        WriteRecord(command, record);
    }

    /// <summary>
    /// The command that runs <paramref name="sql"/> on this state's connection, with no parameters yet: made once and
    /// kept, so SQLite compiles each statement of the apply and read paths once, not on every call (compiling was most
    /// of SQLite's share of a recovery's CPU). Called under <see cref="_lock"/>, like every use of the connection; the
    /// commands are disposed with it.
    /// </summary>
    private SqliteCommand Statement(string sql, SqliteTransaction? transaction)
    {
        if (!_statements.TryGetValue(sql, out var command))
        {
            command = _connection.CreateCommand();
            command.CommandText = sql;
            _statements[sql] = command;
        }

        command.Transaction = transaction;
        command.Parameters.Clear();
        return command;
    }

    /// <summary>The row upsert, to run once or, by <see cref="WriteRecord"/>, for many rows: SQLite then prepares it once.</summary>
    private SqliteCommand CreateWriteCommand(SqliteTransaction transaction)
    {
        var command = _connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = $"""
            INSERT OR REPLACE INTO records ({RecordColumns})
            VALUES ($t, $u, $v, $s, $l, $g, $b, $as, $lr, $ai, $h)
            """;
        foreach (var name in (string[])["$t", "$u", "$v", "$s", "$l", "$g", "$b", "$as", "$lr", "$ai", "$h"])
        {
            command.Parameters.Add(new SqliteParameter { ParameterName = name });
        }

        return command;
    }

    private static void WriteRecord(SqliteCommand command, StoredRecord record)
    {
        var parameters = command.Parameters;
        parameters[0].Value = record.User.Tenant;
        parameters[1].Value = record.User.UserId;
        parameters[2].Value = record.Version;
        parameters[3].Value = (int)record.State;
        parameters[4].Value = record.GuessLimit;
        parameters[5].Value = record.GuessesUsed;
        parameters[6].Value = (object?)record.SealedRecord ?? DBNull.Value;
        parameters[7].Value = record.AttemptSerial;
        parameters[8].Value = record.LastResetSerial;
        parameters[9].Value = (object?)record.RecentCharges ?? DBNull.Value;
        parameters[10].Value = (object?)record.History ?? DBNull.Value;
        command.ExecuteNonQuery();
    }

    private object? ReadMeta(string key)
    {
        var command = Statement("SELECT value FROM meta WHERE key = $k", transaction: null);
        command.Parameters.AddWithValue("$k", key);
        return command.ExecuteScalar();
    }

    private void WriteMeta(string key, object value, SqliteTransaction transaction)
    {
        var command = Statement("INSERT OR REPLACE INTO meta (key, value) VALUES ($k, $v)", transaction);
        command.Parameters.AddWithValue("$k", key);
        command.Parameters.AddWithValue("$v", value);
        command.ExecuteNonQuery();
    }

    private static void Execute(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }
}
