namespace HsmVault.Consensus;

/// <summary>What a log entry carries: an application command, or the no-op a new leader appends.</summary>
public enum LogEntryKind : byte
{
    /// <summary>An application command, handed to <c>IReplicatedStateMachine.Apply</c>.</summary>
    Command = 0,

    /// <summary>
    /// The empty entry a leader appends when elected, so that it commits an entry of its own term
    /// and learns the commit index (Raft §5.4.2, §8; thesis §6.4). Never handed to the application.
    /// </summary>
    NoOp = 1,
}

/// <summary>One entry of the replicated log.</summary>
/// <param name="Index">Position in the log, starting at 1.</param>
/// <param name="Term">Term of the leader that created the entry.</param>
/// <param name="Kind">Command or no-op.</param>
/// <param name="Data">The command bytes (empty for a no-op).</param>
public sealed record LogEntry(ulong Index, ulong Term, LogEntryKind Kind, ReadOnlyMemory<byte> Data);

/// <summary>A snapshot of the application state that replaces the log prefix up to <paramref name="Index"/>.</summary>
/// <param name="Index">Index of the last entry the snapshot includes.</param>
/// <param name="Term">Term of that entry.</param>
/// <param name="Members">Fleet membership as of <paramref name="Index"/>.</param>
/// <param name="Data">The application's serialized state, read as a stream (in memory or in a file).</param>
public sealed record RaftSnapshot(ulong Index, ulong Term, IReadOnlyList<string> Members, SnapshotData Data);

/// <summary>The state a member must persist before it answers anyone (Raft figure 2, "persistent state").</summary>
/// <param name="Term">Latest term this member has seen.</param>
/// <param name="Vote">Candidate voted for in <paramref name="Term"/>, or null.</param>
/// <param name="Commit">Highest index known committed; a hint, safe to lose.</param>
public readonly record struct HardState(ulong Term, string? Vote, ulong Commit);

/// <summary>
/// The rollback guard's record, kept outside the data directory (in production: in the HSM).
/// It is written before this member sends any vote grant or acknowledgement that goes beyond it.
/// </summary>
/// <param name="Term">The member's term when it last spoke.</param>
/// <param name="Vote">Its vote in <paramref name="Term"/>, or null.</param>
/// <param name="Index">Highest log position it has vouched for (acknowledged to a leader, or counted as leader).</param>
/// <param name="IndexTerm">Term of the entry at <paramref name="Index"/>.</param>
public sealed record HighWaterMark(ulong Term, string? Vote, ulong Index, ulong IndexTerm);

/// <summary>A confirmed ReadIndex request: reads may be served once the applied index reaches <paramref name="Index"/>.</summary>
/// <param name="RequestId">The id passed to <see cref="RaftNode.ReadIndex"/>.</param>
/// <param name="Index">The commit index at the time the request was made.</param>
public readonly record struct ReadState(ulong RequestId, ulong Index);

/// <summary>The role a member plays in its current term.</summary>
public enum RaftRole
{
    /// <summary>Follows a leader (or waits for one).</summary>
    Follower,

    /// <summary>Asking whether it could win an election, without disturbing anyone's term (thesis §9.6).</summary>
    PreCandidate,

    /// <summary>Running for election in a new term.</summary>
    Candidate,

    /// <summary>Leads the current term.</summary>
    Leader,
}

/// <summary>
/// A message between members. Every message carries the sender's term; a higher term makes the
/// receiver update its own (Raft §5.1). Transports map these records one to one.
/// </summary>
/// <param name="From">Sender's member id.</param>
/// <param name="To">Receiver's member id.</param>
/// <param name="Term">Sender's term (for a pre-vote request: the term it would campaign in).</param>
public abstract record RaftMessage(string From, string To, ulong Term);

/// <summary>"Would you vote for me in <see cref="RaftMessage.Term"/>?" — changes no state on the receiver (thesis §9.6).</summary>
public sealed record PreVoteRequest(string From, string To, ulong Term, ulong LastLogIndex, ulong LastLogTerm)
    : RaftMessage(From, To, Term);

/// <summary>Answer to a <see cref="PreVoteRequest"/>; a grant carries the request's term, a refusal the responder's.</summary>
public sealed record PreVoteResponse(string From, string To, ulong Term, bool Granted) : RaftMessage(From, To, Term);

/// <summary>RequestVote RPC (Raft §5.2).</summary>
public sealed record VoteRequest(string From, string To, ulong Term, ulong LastLogIndex, ulong LastLogTerm)
    : RaftMessage(From, To, Term);

/// <summary>Answer to a <see cref="VoteRequest"/>.</summary>
public sealed record VoteResponse(string From, string To, ulong Term, bool Granted) : RaftMessage(From, To, Term);

/// <summary>AppendEntries RPC (Raft §5.3); with no entries it is a heartbeat.</summary>
/// <param name="From">Sender's member id.</param>
/// <param name="To">Receiver's member id.</param>
/// <param name="Term">Sender's term.</param>
/// <param name="PrevLogIndex">Index of the entry before <paramref name="Entries"/>.</param>
/// <param name="PrevLogTerm">Term of that entry (the consistency check).</param>
/// <param name="Entries">Entries PrevLogIndex+1, PrevLogIndex+2, ...</param>
/// <param name="LeaderCommit">Leader's commit index.</param>
/// <param name="ReadSequence">Leader's ReadIndex round, echoed in the response (thesis §6.4).</param>
public sealed record AppendEntriesRequest(
    string From,
    string To,
    ulong Term,
    ulong PrevLogIndex,
    ulong PrevLogTerm,
    IReadOnlyList<LogEntry> Entries,
    ulong LeaderCommit,
    ulong ReadSequence) : RaftMessage(From, To, Term);

/// <summary>Answer to an <see cref="AppendEntriesRequest"/> or <see cref="InstallSnapshotRequest"/>.</summary>
/// <param name="From">Sender's member id.</param>
/// <param name="To">Receiver's member id.</param>
/// <param name="Term">Sender's term.</param>
/// <param name="Success">The consistency check passed and the entries are durable on the sender.</param>
/// <param name="MatchIndex">On success: the sender's log matches the leader's up to here.</param>
/// <param name="RejectedIndex">On failure: the request's PrevLogIndex (lets the leader discard stale rejections).</param>
/// <param name="ConflictIndex">On failure: where the leader should retry (first index of <paramref name="ConflictTerm"/>, or last index + 1).</param>
/// <param name="ConflictTerm">On failure: term of the sender's entry at PrevLogIndex, or 0 if its log is shorter.</param>
/// <param name="ReadSequence">The request's ReadSequence, echoed.</param>
public sealed record AppendEntriesResponse(
    string From,
    string To,
    ulong Term,
    bool Success,
    ulong MatchIndex,
    ulong RejectedIndex,
    ulong ConflictIndex,
    ulong ConflictTerm,
    ulong ReadSequence) : RaftMessage(From, To, Term);

/// <summary>InstallSnapshot RPC (Raft §7): sent when the follower needs entries the leader has compacted away.</summary>
public sealed record InstallSnapshotRequest(string From, string To, ulong Term, RaftSnapshot Snapshot, ulong ReadSequence)
    : RaftMessage(From, To, Term);
