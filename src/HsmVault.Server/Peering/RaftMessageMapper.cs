using Google.Protobuf;
using HsmVault.Consensus;
using HsmVault.Protocol.V1;

namespace HsmVault.Server.Peering;

/// <summary>
/// Maps the Raft core's message records to <c>peer.proto</c> envelopes and back: one to one, except a snapshot, which
/// travels as a sequence of chunk envelopes (<see cref="ToChunkEnvelopes"/>, <see cref="ToChunk"/>).
/// </summary>
public static class RaftMessageMapper
{
    /// <summary>The envelope for <paramref name="message"/>.</summary>
    public static RaftEnvelope ToEnvelope(RaftMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        var envelope = new RaftEnvelope { From = message.From, To = message.To, Term = message.Term };
        switch (message)
        {
            case PreVoteRequest m:
                envelope.PreVoteRequest = new VoteRequestBody { LastLogIndex = m.LastLogIndex, LastLogTerm = m.LastLogTerm };
                break;
            case PreVoteResponse m:
                envelope.PreVoteResponse = new VoteResponseBody { Granted = m.Granted };
                break;
            case VoteRequest m:
                envelope.VoteRequest = new VoteRequestBody { LastLogIndex = m.LastLogIndex, LastLogTerm = m.LastLogTerm };
                break;
            case VoteResponse m:
                envelope.VoteResponse = new VoteResponseBody { Granted = m.Granted };
                break;
            case AppendEntriesRequest m:
                var append = new AppendEntriesBody
                {
                    PrevLogIndex = m.PrevLogIndex,
                    PrevLogTerm = m.PrevLogTerm,
                    LeaderCommit = m.LeaderCommit,
                    ReadSequence = m.ReadSequence,
                };
                append.Entries.AddRange(m.Entries.Select(e => new LogEntryBody
                {
                    Index = e.Index,
                    Term = e.Term,
                    Kind = (uint)e.Kind,
                    Data = ByteString.CopyFrom(e.Data.Span),
                }));
                envelope.AppendEntries = append;
                break;
            case AppendEntriesResponse m:
                envelope.AppendEntriesResponse = new AppendEntriesResponseBody
                {
                    Success = m.Success,
                    MatchIndex = m.MatchIndex,
                    RejectedIndex = m.RejectedIndex,
                    ConflictIndex = m.ConflictIndex,
                    ConflictTerm = m.ConflictTerm,
                    ReadSequence = m.ReadSequence,
                };
                break;
            case InstallSnapshotRequest:
                throw new ArgumentException("a snapshot travels in chunks: use ToChunkEnvelopes", nameof(message));
            default:
                throw new ArgumentException($"unknown Raft message {message.GetType().Name}", nameof(message));
        }

        return envelope;
    }

    /// <summary>
    /// The envelopes that carry <paramref name="message"/>'s snapshot, <paramref name="chunkBytes"/> of data each, in the
    /// order they must be sent. Each is built when enumerated, so only one chunk's copy exists at a time.
    /// </summary>
    public static IEnumerable<RaftEnvelope> ToChunkEnvelopes(InstallSnapshotRequest message, int chunkBytes)
    {
        ArgumentNullException.ThrowIfNull(message);
        return SnapshotChunker.Split(message.Snapshot, chunkBytes).Select(chunk =>
        {
            var body = new InstallSnapshotBody
            {
                Index = chunk.Index,
                Term = chunk.Term,
                Data = ByteString.CopyFrom(chunk.Data.Span),
                ReadSequence = message.ReadSequence,
                Offset = chunk.Offset,
                TotalBytes = chunk.TotalBytes,
                Done = chunk.Done,
                Sha256 = ByteString.CopyFrom(chunk.Sha256.Span),
            };
            body.Members.AddRange(chunk.Members);
            return new RaftEnvelope { From = message.From, To = message.To, Term = message.Term, InstallSnapshot = body };
        });
    }

    /// <summary>The snapshot chunk an <c>install_snapshot</c> envelope carries.</summary>
    public static SnapshotChunk ToChunk(RaftEnvelope envelope)
    {
        ArgumentNullException.ThrowIfNull(envelope);
        var body = envelope.InstallSnapshot ?? throw new InvalidDataException("Raft envelope carries no snapshot chunk");
        return new SnapshotChunk(
            body.Index, body.Term, [.. body.Members], body.TotalBytes, body.Offset, body.Data.Memory, body.Done, body.Sha256.Memory);
    }

    /// <summary>The Raft message an envelope carries (for a snapshot chunk, see <see cref="ToChunk"/>).</summary>
    /// <exception cref="InvalidDataException">The envelope has no body, is a snapshot chunk, or has an entry of an unknown kind.</exception>
    public static RaftMessage FromEnvelope(RaftEnvelope envelope)
    {
        ArgumentNullException.ThrowIfNull(envelope);
        var (from, to, term) = (envelope.From, envelope.To, envelope.Term);
        return envelope.BodyCase switch
        {
            RaftEnvelope.BodyOneofCase.PreVoteRequest => new PreVoteRequest(from, to, term, envelope.PreVoteRequest.LastLogIndex, envelope.PreVoteRequest.LastLogTerm),
            RaftEnvelope.BodyOneofCase.PreVoteResponse => new PreVoteResponse(from, to, term, envelope.PreVoteResponse.Granted),
            RaftEnvelope.BodyOneofCase.VoteRequest => new VoteRequest(from, to, term, envelope.VoteRequest.LastLogIndex, envelope.VoteRequest.LastLogTerm),
            RaftEnvelope.BodyOneofCase.VoteResponse => new VoteResponse(from, to, term, envelope.VoteResponse.Granted),
            RaftEnvelope.BodyOneofCase.AppendEntries => new AppendEntriesRequest(
                from, to, term,
                envelope.AppendEntries.PrevLogIndex,
                envelope.AppendEntries.PrevLogTerm,
                envelope.AppendEntries.Entries.Select(ToEntry).ToList(),
                envelope.AppendEntries.LeaderCommit,
                envelope.AppendEntries.ReadSequence),
            RaftEnvelope.BodyOneofCase.AppendEntriesResponse => new AppendEntriesResponse(
                from, to, term,
                envelope.AppendEntriesResponse.Success,
                envelope.AppendEntriesResponse.MatchIndex,
                envelope.AppendEntriesResponse.RejectedIndex,
                envelope.AppendEntriesResponse.ConflictIndex,
                envelope.AppendEntriesResponse.ConflictTerm,
                envelope.AppendEntriesResponse.ReadSequence),
            RaftEnvelope.BodyOneofCase.InstallSnapshot => throw new InvalidDataException("a snapshot chunk is not a whole Raft message"),
            _ => throw new InvalidDataException("Raft envelope has no message body"),
        };
    }

    private static LogEntry ToEntry(LogEntryBody body) =>
        body.Kind <= (uint)LogEntryKind.NoOp
            ? new LogEntry(body.Index, body.Term, (LogEntryKind)body.Kind, body.Data.ToByteArray())
            : throw new InvalidDataException($"log entry {body.Index} has unknown kind {body.Kind}");
}
