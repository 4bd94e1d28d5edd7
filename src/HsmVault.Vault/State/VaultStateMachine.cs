using System.Text;
using HsmVault.Consensus;
using Microsoft.Data.Sqlite;

namespace HsmVault.Vault.State;

/// <summary>
/// The vault's replicated state: one row per user, kept in SQLite, changed only by applying
/// committed commands in log order. Each apply is one transaction that also records the
/// applied index, so after a crash the state and the index agree and the log is replayed
/// from the next entry.
/// </summary>
/// <remarks>
/// Nothing stored here lets anyone test password guesses offline: records are sealed by the
/// token's record key, and the guess counts and versions are not secrets. WAL with
/// synchronous=FULL makes every committed transaction durable before apply returns;
/// secure_delete overwrites the pages of destroyed records.
/// </remarks>
public sealed class VaultStateMachine : IReplicatedStateMachine, IDisposable
{
    private const string DatabaseFileName = "vault.db";
    private readonly SqliteConnection _connection;
    private readonly Lock _lock = new();
    private readonly List<(ulong Index, TaskCompletionSource Reached)> _waiters = [];
    private ulong _appliedIndex;

    /// <summary>Opens (or creates) the state in <paramref name="dataDirectory"/>.</summary>
    public VaultStateMachine(string dataDirectory)
    {
        Directory.CreateDirectory(dataDirectory);
        var path = Path.Combine(dataDirectory, DatabaseFileName);
        _connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString());
        _connection.Open();
        Execute("PRAGMA journal_mode=WAL;");
        Execute("PRAGMA synchronous=FULL;");
        Execute("PRAGMA secure_delete=ON;");
        Execute("""
            CREATE TABLE IF NOT EXISTS records (
                tenant TEXT NOT NULL,
                user_id TEXT NOT NULL,
                version INTEGER NOT NULL,
                state INTEGER NOT NULL,
                guess_limit INTEGER NOT NULL,
                guesses_used INTEGER NOT NULL,
                sealed BLOB,
                PRIMARY KEY (tenant, user_id)) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
            """);
        using var command = _connection.CreateCommand();
        command.CommandText = "SELECT value FROM meta WHERE key = 'applied_index'";
        _appliedIndex = command.ExecuteScalar() is long index ? (ulong)index : 0;
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
    /// Applies the committed entry at <paramref name="index"/>. Entries at or below the applied
    /// index were applied before a restart and are skipped, so replay is idempotent.
    /// </summary>
    /// <returns>The encoded <see cref="CommandResult"/>; empty for a skipped entry.</returns>
    public byte[] Apply(ulong index, ReadOnlySpan<byte> command)
    {
        var decoded = command.IsEmpty ? null : VaultCommandCodec.Decode(command);
        lock (_lock)
        {
            if (index <= _appliedIndex)
            {
                return [];
            }

            using var transaction = _connection.BeginTransaction();
            CommandResult? result = null;
            if (decoded is not null)
            {
                var (next, outcome) = RecordTransitions.Apply(ReadLocked(decoded.User, transaction), decoded);
                if (next is not null)
                {
                    WriteLocked(next, transaction);
                }

                result = outcome;
            }

            SetAppliedIndexLocked(index, transaction);
            transaction.Commit();
            _appliedIndex = index;
            ReleaseWaitersLocked();
            return result is null ? [] : VaultCommandCodec.EncodeResult(result);
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

    /// <summary>Serialises every row, as of the applied index, for a Raft snapshot.</summary>
    public byte[] CreateSnapshot(out ulong index)
    {
        lock (_lock)
        {
            index = _appliedIndex;
            using var stream = new MemoryStream();
            using (var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true))
            {
                writer.Write(SnapshotFormatVersion);
                using var command = _connection.CreateCommand();
                command.CommandText = "SELECT tenant, user_id, version, state, guess_limit, guesses_used, sealed FROM records ORDER BY tenant, user_id";
                using var reader = command.ExecuteReader();
                while (reader.Read())
                {
                    writer.Write(true);
                    var record = ToRecord(reader);
                    writer.Write(record.User.Tenant);
                    writer.Write(record.User.UserId);
                    writer.Write(record.Version);
                    writer.Write((byte)record.State);
                    writer.Write((byte)record.GuessLimit);
                    writer.Write((byte)record.GuessesUsed);
                    writer.Write(record.SealedRecord?.Length ?? -1);
                    if (record.SealedRecord is not null)
                    {
                        writer.Write(record.SealedRecord);
                    }
                }

                writer.Write(false);
            }

            return stream.ToArray();
        }
    }

    /// <summary>Replaces the whole state with a snapshot taken at <paramref name="index"/>.</summary>
    public void RestoreSnapshot(ulong index, ReadOnlySpan<byte> data)
    {
        var records = ParseSnapshot(data);
        lock (_lock)
        {
            using var transaction = _connection.BeginTransaction();
            using (var clear = _connection.CreateCommand())
            {
                clear.Transaction = transaction;
                clear.CommandText = "DELETE FROM records";
                clear.ExecuteNonQuery();
            }

            foreach (var record in records)
            {
                WriteLocked(record, transaction);
            }

            SetAppliedIndexLocked(index, transaction);
            transaction.Commit();
            _appliedIndex = index;
            ReleaseWaitersLocked();
        }
    }

    /// <summary>Completes once the state has applied at least <paramref name="index"/> (a follower's ReadIndex wait).</summary>
    public Task WaitForAppliedAsync(ulong index, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (_appliedIndex >= index)
            {
                return Task.CompletedTask;
            }

            var reached = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiters.Add((index, reached));
            return reached.Task.WaitAsync(cancellationToken);
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        lock (_lock)
        {
            _connection.Dispose();
        }
    }

    private const byte SnapshotFormatVersion = 1;

    private void ReleaseWaitersLocked()
    {
        for (var i = _waiters.Count - 1; i >= 0; i--)
        {
            if (_waiters[i].Index <= _appliedIndex)
            {
                _waiters[i].Reached.TrySetResult();
                _waiters.RemoveAt(i);
            }
        }
    }

    /// <summary>Parses a snapshot completely before anything is replaced; any defect throws <see cref="InvalidDataException"/>.</summary>
    private static List<StoredRecord> ParseSnapshot(ReadOnlySpan<byte> data)
    {
        using var stream = new MemoryStream(data.ToArray(), writable: false);
        using var reader = new BinaryReader(stream, Encoding.UTF8);
        try
        {
            if (reader.ReadByte() != SnapshotFormatVersion)
            {
                throw new InvalidDataException("vault snapshot has an unknown format version");
            }

            var records = new List<StoredRecord>();
            while (reader.ReadBoolean())
            {
                var user = new UserIdentity(reader.ReadString(), reader.ReadString());
                var version = reader.ReadInt64();
                var state = (RecordState)reader.ReadByte();
                int limit = reader.ReadByte();
                int used = reader.ReadByte();
                var length = reader.ReadInt32();
                if (!Enum.IsDefined(state) || limit is < RecordLimits.MinGuessLimit or > RecordLimits.MaxGuessLimit || used > limit
                    || length < -1 || length > stream.Length - stream.Position || (length < 0) != (state != RecordState.Live))
                {
                    throw new InvalidDataException($"vault snapshot has an invalid row for {user}");
                }

                var sealedRecord = length < 0 ? null : reader.ReadBytes(length);
                records.Add(new StoredRecord(user, version, state, limit, used, sealedRecord));
            }

            if (stream.Position != stream.Length)
            {
                throw new InvalidDataException("vault snapshot has trailing bytes");
            }

            return records;
        }
        catch (Exception e) when (e is EndOfStreamException or FormatException or IOException or VaultException)
        {
            throw new InvalidDataException("vault snapshot is truncated or malformed", e);
        }
    }

    private StoredRecord? ReadLocked(UserIdentity user, SqliteTransaction? transaction)
    {
        using var command = _connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = "SELECT tenant, user_id, version, state, guess_limit, guesses_used, sealed FROM records WHERE tenant = $t AND user_id = $u";
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
        reader.IsDBNull(6) ? null : (byte[])reader[6]);

    private void WriteLocked(StoredRecord record, SqliteTransaction transaction)
    {
        using var command = _connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = """
            INSERT INTO records (tenant, user_id, version, state, guess_limit, guesses_used, sealed)
            VALUES ($t, $u, $v, $s, $l, $g, $b)
            ON CONFLICT (tenant, user_id) DO UPDATE SET
                version = excluded.version, state = excluded.state, guess_limit = excluded.guess_limit,
                guesses_used = excluded.guesses_used, sealed = excluded.sealed
            """;
        command.Parameters.AddWithValue("$t", record.User.Tenant);
        command.Parameters.AddWithValue("$u", record.User.UserId);
        command.Parameters.AddWithValue("$v", record.Version);
        command.Parameters.AddWithValue("$s", (int)record.State);
        command.Parameters.AddWithValue("$l", record.GuessLimit);
        command.Parameters.AddWithValue("$g", record.GuessesUsed);
        command.Parameters.AddWithValue("$b", (object?)record.SealedRecord ?? DBNull.Value);
        command.ExecuteNonQuery();
    }

    private void SetAppliedIndexLocked(ulong index, SqliteTransaction transaction)
    {
        using var command = _connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = "INSERT INTO meta (key, value) VALUES ('applied_index', $i) ON CONFLICT (key) DO UPDATE SET value = excluded.value";
        command.Parameters.AddWithValue("$i", (long)index);
        command.ExecuteNonQuery();
    }

    private void Execute(string sql)
    {
        using var command = _connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }
}
