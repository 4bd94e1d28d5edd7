using HsmVault.Crypto.Signatures;
using Microsoft.Data.Sqlite;

namespace HsmVault.Witness.Storage;

/// <summary>One logged bundle as stored.</summary>
internal sealed record StoredEntry(
    ulong LeafIndex,
    string Namespace,
    ulong Epoch,
    byte[] Digest,
    byte[] Statement,
    SignatureAlgorithm SignatureAlgorithm,
    byte[] Signature,
    byte[] LeafHash,
    byte[] Bundle,
    SignatureAlgorithm OperatorSignatureAlgorithm,
    byte[] OperatorSignature);

/// <summary>A refused second digest for a logged epoch.</summary>
internal sealed record StoredEquivocation(
    long Id,
    string Namespace,
    ulong Epoch,
    byte[] LoggedDigest,
    byte[] AttemptedDigest,
    long ObservedAtUnixMs,
    SignatureAlgorithm OperatorSignatureAlgorithm,
    byte[] OperatorSignature);

/// <summary>
/// The witness's SQLite file: entries, the checkpoint signed at every tree size, refused
/// equivocations, and the identity (origin, public key) the log was started with. WAL with
/// synchronous=FULL: a committed transaction is on disk before <see cref="Append"/> returns,
/// and an entry, its tree size and its checkpoint are one transaction, so a crash leaves all or
/// none of them. Rows are only ever inserted.
/// </summary>
internal sealed class WitnessStore : IDisposable
{
    private const string Schema = """
        CREATE TABLE IF NOT EXISTS meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS entries (
            leaf_index INTEGER PRIMARY KEY,
            namespace TEXT NOT NULL,
            epoch INTEGER NOT NULL,
            digest BLOB NOT NULL,
            statement BLOB NOT NULL,
            signature_algorithm INTEGER NOT NULL,
            signature BLOB NOT NULL,
            leaf_hash BLOB NOT NULL,
            bundle BLOB NOT NULL,
            operator_signature_algorithm INTEGER NOT NULL,
            operator_signature BLOB NOT NULL,
            UNIQUE (namespace, epoch));
        CREATE TABLE IF NOT EXISTS checkpoints (
            tree_size INTEGER PRIMARY KEY,
            root_hash BLOB NOT NULL,
            note TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS equivocations (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            namespace TEXT NOT NULL,
            epoch INTEGER NOT NULL,
            logged_digest BLOB NOT NULL,
            attempted_digest BLOB NOT NULL,
            observed_at_unix_ms INTEGER NOT NULL,
            operator_signature_algorithm INTEGER NOT NULL,
            operator_signature BLOB NOT NULL,
            UNIQUE (namespace, epoch, attempted_digest));
        """;

    private const string EntryColumns =
        "leaf_index, namespace, epoch, digest, statement, signature_algorithm, signature, leaf_hash, bundle, operator_signature_algorithm, operator_signature";

    // One connection writes, one reads (WAL lets the reader run while the writer commits); each
    // is used by one thread at a time.
    private readonly SqliteConnection _writer;
    private readonly SqliteConnection _reader;
    private readonly Lock _writeLock = new();
    private readonly Lock _readLock = new();

    private WitnessStore(SqliteConnection writer, SqliteConnection reader)
    {
        _writer = writer;
        _reader = reader;
    }

    /// <summary>Opens (creating if needed) the store at <paramref name="path"/>.</summary>
    public static WitnessStore Open(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var connectionString = new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString();
        var writer = new SqliteConnection(connectionString);
        var reader = new SqliteConnection(connectionString);
        try
        {
            writer.Open();
            Execute(writer, "PRAGMA journal_mode=WAL;");
            Execute(writer, "PRAGMA synchronous=FULL;");
            Execute(writer, Schema);
            reader.Open();
            return new WitnessStore(writer, reader);
        }
        catch
        {
            writer.Dispose();
            reader.Dispose();
            throw;
        }
    }

    /// <summary>A value of the identity table, or null.</summary>
    public string? ReadMeta(string key)
    {
        lock (_readLock)
        {
            using var command = Command(_reader, "SELECT value FROM meta WHERE key = $key", ("$key", key));
            return command.ExecuteScalar() as string;
        }
    }

    /// <summary>Records an identity value; it never changes once written.</summary>
    public void WriteMeta(string key, string value)
    {
        lock (_writeLock)
        {
            using var command = Command(_writer, "INSERT INTO meta (key, value) VALUES ($key, $value)", ("$key", key), ("$value", value));
            command.ExecuteNonQuery();
        }
    }

    /// <summary>Every leaf hash in index order, with each entry's namespace and epoch (to rebuild the in-memory state).</summary>
    public IEnumerable<(ulong LeafIndex, string Namespace, ulong Epoch, byte[] LeafHash)> ReadLeaves()
    {
        lock (_readLock)
        {
            using var command = Command(_reader, "SELECT leaf_index, namespace, epoch, leaf_hash FROM entries ORDER BY leaf_index");
            using var reader = command.ExecuteReader();
            var leaves = new List<(ulong, string, ulong, byte[])>();
            while (reader.Read())
            {
                leaves.Add(((ulong)reader.GetInt64(0), reader.GetString(1), (ulong)reader.GetInt64(2), (byte[])reader[3]));
            }

            return leaves;
        }
    }

    /// <summary>The checkpoint note signed at <paramref name="treeSize"/>, or null.</summary>
    public string? ReadCheckpoint(ulong treeSize)
    {
        lock (_readLock)
        {
            using var command = Command(_reader, "SELECT note FROM checkpoints WHERE tree_size = $size", ("$size", (long)treeSize));
            return command.ExecuteScalar() as string;
        }
    }

    /// <summary>The largest tree size with a checkpoint and its note, or null for an empty log.</summary>
    public (ulong TreeSize, string Note)? ReadLatestCheckpoint()
    {
        lock (_readLock)
        {
            using var command = Command(_reader, "SELECT tree_size, note FROM checkpoints ORDER BY tree_size DESC LIMIT 1");
            using var reader = command.ExecuteReader();
            return reader.Read() ? ((ulong)reader.GetInt64(0), reader.GetString(1)) : null;
        }
    }

    /// <summary>Checkpoint notes from size <paramref name="fromSize"/> up, at most <paramref name="limit"/>, in size order.</summary>
    public List<string> ReadCheckpoints(ulong fromSize, int limit)
    {
        lock (_readLock)
        {
            using var command = Command(_reader, "SELECT note FROM checkpoints WHERE tree_size >= $from ORDER BY tree_size LIMIT $limit",
                ("$from", (long)fromSize), ("$limit", limit));
            using var reader = command.ExecuteReader();
            var notes = new List<string>();
            while (reader.Read())
            {
                notes.Add(reader.GetString(0));
            }

            return notes;
        }
    }

    /// <summary>The entry for (<paramref name="ns"/>, <paramref name="epoch"/>), or null.</summary>
    public StoredEntry? FindEntry(string ns, ulong epoch)
    {
        lock (_readLock)
        {
            using var command = Command(_reader, $"SELECT {EntryColumns} FROM entries WHERE namespace = $ns AND epoch = $epoch",
                ("$ns", ns), ("$epoch", (long)epoch));
            using var reader = command.ExecuteReader();
            return reader.Read() ? ReadEntry(reader) : null;
        }
    }

    /// <summary>Entries from leaf <paramref name="start"/>, at most <paramref name="count"/>.</summary>
    public List<StoredEntry> ReadEntries(ulong start, int count)
    {
        lock (_readLock)
        {
            using var command = Command(_reader, $"SELECT {EntryColumns} FROM entries WHERE leaf_index >= $start ORDER BY leaf_index LIMIT $count",
                ("$start", (long)start), ("$count", count));
            using var reader = command.ExecuteReader();
            var entries = new List<StoredEntry>();
            while (reader.Read())
            {
                entries.Add(ReadEntry(reader));
            }

            return entries;
        }
    }

    /// <summary>
    /// Commits <paramref name="entry"/> and the checkpoint of the tree it completes in one
    /// transaction; durable (fsynced) when this returns.
    /// </summary>
    public void Append(StoredEntry entry, ulong treeSize, byte[] rootHash, string checkpointNote)
    {
        lock (_writeLock)
        {
            using var transaction = _writer.BeginTransaction();
            using (var insert = Command(_writer,
                $"INSERT INTO entries ({EntryColumns}) VALUES ($i, $ns, $epoch, $digest, $statement, $alg, $sig, $leaf, $bundle, $opalg, $opsig)",
                ("$i", (long)entry.LeafIndex), ("$ns", entry.Namespace), ("$epoch", (long)entry.Epoch), ("$digest", entry.Digest),
                ("$statement", entry.Statement), ("$alg", (int)entry.SignatureAlgorithm), ("$sig", entry.Signature),
                ("$leaf", entry.LeafHash), ("$bundle", entry.Bundle), ("$opalg", (int)entry.OperatorSignatureAlgorithm),
                ("$opsig", entry.OperatorSignature)))
            {
                insert.Transaction = transaction;
                insert.ExecuteNonQuery();
            }

            using (var checkpoint = Command(_writer, "INSERT INTO checkpoints (tree_size, root_hash, note) VALUES ($size, $root, $note)",
                ("$size", (long)treeSize), ("$root", rootHash), ("$note", checkpointNote)))
            {
                checkpoint.Transaction = transaction;
                checkpoint.ExecuteNonQuery();
            }

            transaction.Commit();
        }
    }

    /// <summary>Records a refused second digest (once per attempted digest); returns the record.</summary>
    public StoredEquivocation RecordEquivocation(string ns, ulong epoch, byte[] loggedDigest, byte[] attemptedDigest, long observedAtUnixMs,
        SignatureAlgorithm operatorAlgorithm, byte[] operatorSignature)
    {
        lock (_writeLock)
        {
            using (var insert = Command(_writer,
                "INSERT OR IGNORE INTO equivocations (namespace, epoch, logged_digest, attempted_digest, observed_at_unix_ms, operator_signature_algorithm, operator_signature) " +
                "VALUES ($ns, $epoch, $logged, $attempted, $at, $alg, $sig)",
                ("$ns", ns), ("$epoch", (long)epoch), ("$logged", loggedDigest), ("$attempted", attemptedDigest), ("$at", observedAtUnixMs),
                ("$alg", (int)operatorAlgorithm), ("$sig", operatorSignature)))
            {
                insert.ExecuteNonQuery();
            }

            using var select = Command(_writer,
                "SELECT id, namespace, epoch, logged_digest, attempted_digest, observed_at_unix_ms, operator_signature_algorithm, operator_signature " +
                "FROM equivocations WHERE namespace = $ns AND epoch = $epoch AND attempted_digest = $attempted",
                ("$ns", ns), ("$epoch", (long)epoch), ("$attempted", attemptedDigest));
            using var reader = select.ExecuteReader();
            reader.Read();
            return ReadEquivocation(reader);
        }
    }

    /// <summary>Recorded equivocations with id above <paramref name="afterId"/>, of <paramref name="ns"/> (or all), at most <paramref name="limit"/>.</summary>
    public List<StoredEquivocation> ReadEquivocations(string? ns, long afterId, int limit)
    {
        lock (_readLock)
        {
            using var command = Command(_reader,
                "SELECT id, namespace, epoch, logged_digest, attempted_digest, observed_at_unix_ms, operator_signature_algorithm, operator_signature " +
                "FROM equivocations WHERE id > $after AND ($ns IS NULL OR namespace = $ns) ORDER BY id LIMIT $limit",
                ("$after", afterId), ("$ns", (object?)ns ?? DBNull.Value), ("$limit", limit));
            using var reader = command.ExecuteReader();
            var result = new List<StoredEquivocation>();
            while (reader.Read())
            {
                result.Add(ReadEquivocation(reader));
            }

            return result;
        }
    }

    public void Dispose()
    {
        _writer.Dispose();
        _reader.Dispose();
    }

    private static StoredEntry ReadEntry(SqliteDataReader reader) => new(
        (ulong)reader.GetInt64(0), reader.GetString(1), (ulong)reader.GetInt64(2), (byte[])reader[3], (byte[])reader[4],
        (SignatureAlgorithm)reader.GetInt32(5), (byte[])reader[6], (byte[])reader[7], (byte[])reader[8],
        (SignatureAlgorithm)reader.GetInt32(9), (byte[])reader[10]);

    private static StoredEquivocation ReadEquivocation(SqliteDataReader reader) => new(
        reader.GetInt64(0), reader.GetString(1), (ulong)reader.GetInt64(2), (byte[])reader[3], (byte[])reader[4], reader.GetInt64(5),
        (SignatureAlgorithm)reader.GetInt32(6), (byte[])reader[7]);

    private static SqliteCommand Command(SqliteConnection connection, string sql, params (string Name, object Value)[] parameters)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value);
        }

        return command;
    }

    private static void Execute(SqliteConnection connection, string sql)
    {
        using var command = Command(connection, sql);
        command.ExecuteNonQuery();
    }
}
