using MergeMix.ML.Mixing;
using MergeMix.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace MergeMix.ML.Alignment;

/// <summary>
/// Preference pairs for <see cref="PreferenceTrainer"/>: per pair a chosen (image, answer) and a rejected
/// (image, answer) for the same prompt. Images are held on the CPU as float [N, 3, H, W]; the dataset owns them.
/// </summary>
/// <remarks>
/// Two ways to build one: <see cref="FromMixing"/> (MergeMix: chosen = raw image, rejected = mixed image, both with
/// the ground-truth answer, λ recorded per pair) and <see cref="FromPairs"/> (explicit chosen/rejected answers).
/// The mixed images are drawn once, from a seed, so every epoch (and any precomputed reference log-probs) sees the
/// same pairs.
/// </remarks>
public sealed class PreferenceDataset : IDisposable
{
    private PreferenceDataset(Tensor chosenImages, Tensor rejectedImages, string[] prompts, string[] chosenAnswers,
        string[] rejectedAnswers, float[]? lambdas)
    {
        ChosenImages = chosenImages;
        RejectedImages = rejectedImages;
        Prompts = prompts;
        ChosenAnswers = chosenAnswers;
        RejectedAnswers = rejectedAnswers;
        Lambdas = lambdas;
    }

    /// <summary>float [N, 3, H, W]: image of each chosen answer.</summary>
    public Tensor ChosenImages { get; }
    /// <summary>float [N, 3, H, W]: image of each rejected answer (the mixed image for <see cref="FromMixing"/>).</summary>
    public Tensor RejectedImages { get; }
    /// <summary>Prompt of each pair.</summary>
    public IReadOnlyList<string> Prompts { get; }
    /// <summary>Chosen (preferred) answer of each pair.</summary>
    public IReadOnlyList<string> ChosenAnswers { get; }
    /// <summary>Rejected answer of each pair.</summary>
    public IReadOnlyList<string> RejectedAnswers { get; }
    /// <summary>λ of each pair (share of the raw image kept in the rejected image), or null for explicit pairs.</summary>
    public IReadOnlyList<float>? Lambdas { get; }
    /// <summary>Number of pairs.</summary>
    public int Count => Prompts.Count;

    /// <summary>
    /// MergeMix pairs: chosen = (raw image, answer), rejected = (mixed image, same answer). Rows are shuffled with
    /// <paramref name="seed"/> into groups of <paramref name="groupSize"/> (the remainder joins the last group), and each group is mixed by <paramref name="policy"/> with a generator seeded by <paramref name="seed"/>.
    /// The policy receives each row's index within its group as its label (every caption is its own class).
    /// </summary>
    /// <param name="images">float [N, 3, H, W], N ≥ 2 (copied).</param>
    /// <param name="prompts">N prompts.</param>
    /// <param name="answers">N ground-truth answers.</param>
    /// <param name="policy">Mixing policy; its λ must lie in [0, 1].</param>
    /// <param name="seed">Seed of the grouping and of the mixing.</param>
    /// <param name="groupSize">Rows mixed together (partners come from the same group), ≥ 2.</param>
    /// <param name="attention">Attention source, required when <see cref="IMixPolicy.NeedsAttention"/>. The policy and
    /// the source receive the images on the CPU.</param>
    public static PreferenceDataset FromMixing(Tensor images, IReadOnlyList<string> prompts, IReadOnlyList<string> answers,
        IMixPolicy policy, long seed, int groupSize = 8, IAttentionSource? attention = null)
    {
        ArgumentNullException.ThrowIfNull(policy);
        int n = CheckRows(images, prompts, answers, nameof(answers));
        if (n < 2) throw new ArgumentException($"images has {n} row(s); mixing needs at least 2.", nameof(images));
        if (groupSize < 2) throw new ArgumentOutOfRangeException(nameof(groupSize), groupSize, "groupSize must be ≥ 2 (a mix needs a partner).");
        if (policy.NeedsAttention && attention is null)
            throw new ArgumentException($"policy '{policy.Name}' needs attention scores; pass an IAttentionSource.", nameof(attention));

        var lambdas = new float[n];
        Tensor raw, mixedAll;
        using (no_grad())
        using (NewDisposeScope())
        {
            // Dataset tensors outlive this call, so they belong to no dispose scope.
            raw = images.detach().to(CPU).to_type(ScalarType.Float32).clone().DetachFromDisposeScope();
            mixedAll = raw.clone().DetachFromDisposeScope();
            using var generator = new Generator((ulong)seed);
            var order = randperm(n, generator: generator).data<long>().ToArray();
            foreach (var group in Groups(order, groupSize))
            {
                var index = tensor(group);
                var groupImages = raw.index_select(0, index);
                using var result = policy.Mix(groupImages, Scalars.Arange(group.Length), group.Length, generator, attention);
                if (!result.Mixed.shape.SequenceEqual(groupImages.shape))
                    throw new InvalidOperationException(
                        $"policy '{policy.Name}' returned mixed images [{string.Join(", ", result.Mixed.shape)}] for input [{string.Join(", ", groupImages.shape)}].");
                var groupLambdas = result.Lambda.to(CPU).to_type(ScalarType.Float32).data<float>().ToArray();
                for (int i = 0; i < group.Length; i++)
                {
                    if (!(groupLambdas[i] >= 0 && groupLambdas[i] <= 1))
                        throw new ArgumentOutOfRangeException(nameof(policy), groupLambdas[i],
                            $"policy '{policy.Name}' returned Lambda = {groupLambdas[i]} for row {group[i]}; λ (share of the raw image kept) must lie in [0, 1].");
                    lambdas[group[i]] = groupLambdas[i];
                }
                mixedAll.index_copy_(0, index, result.Mixed.to(CPU).to_type(ScalarType.Float32));
            }
        }
        var answerArray = answers.ToArray();
        return new PreferenceDataset(raw, mixedAll, prompts.ToArray(), answerArray, (string[])answerArray.Clone(), lambdas);
    }

    /// <summary>
    /// Explicit pairs: for each row, <paramref name="chosen"/> is preferred over <paramref name="rejected"/> given the
    /// image and prompt. A pair whose rejected side equals its chosen side (same answer and same image) carries no
    /// preference signal: it is kept, and reported through <paramref name="warning"/>.
    /// </summary>
    /// <param name="images">float [N, 3, H, W] (copied): the image of the chosen side, and of the rejected side unless
    /// <paramref name="rejectedImages"/> is given.</param>
    /// <param name="prompts">N prompts.</param>
    /// <param name="chosen">N preferred answers.</param>
    /// <param name="rejected">N dispreferred answers.</param>
    /// <param name="warning">Receives one message per degenerate pair (may be null).</param>
    /// <param name="rejectedImages">Optional float [N, 3, H, W] images for the rejected side (copied).</param>
    public static PreferenceDataset FromPairs(Tensor images, IReadOnlyList<string> prompts, IReadOnlyList<string> chosen,
        IReadOnlyList<string> rejected, Action<string>? warning = null, Tensor? rejectedImages = null)
    {
        int n = CheckRows(images, prompts, chosen, nameof(chosen));
        ArgumentNullException.ThrowIfNull(rejected);
        if (rejected.Count != n)
            throw new ArgumentException($"rejected has {rejected.Count} items, expected {n} (one per image).", nameof(rejected));
        if (rejectedImages is not null && !rejectedImages.shape.SequenceEqual(images.shape))
            throw new ArgumentException(
                $"rejectedImages must have the shape of images [{string.Join(", ", images.shape)}], got [{string.Join(", ", rejectedImages.shape)}].",
                nameof(rejectedImages));

        Tensor chosenCopy, rejectedCopy;
        using (no_grad())
        {
            chosenCopy = images.detach().to(CPU).to_type(ScalarType.Float32).clone().DetachFromDisposeScope();
            rejectedCopy = (rejectedImages ?? images).detach().to(CPU).to_type(ScalarType.Float32).clone().DetachFromDisposeScope();
        }
        if (warning is not null)
            for (int i = 0; i < n; i++)
            {
                if (chosen[i] != rejected[i]) continue;
                using var scope = NewDisposeScope();
                if (rejectedImages is null || chosenCopy[i].eq(rejectedCopy[i]).all().item<bool>())
                    warning($"pair {i}: the rejected answer \"{rejected[i]}\" equals the chosen one on the same image, so it carries no preference signal.");
            }
        return new PreferenceDataset(chosenCopy, rejectedCopy, prompts.ToArray(), chosen.ToArray(), rejected.ToArray(), null);
    }

    /// <summary>Disposes the image tensors.</summary>
    public void Dispose()
    {
        ChosenImages.Dispose();
        RejectedImages.Dispose();
    }

    private static int CheckRows(Tensor images, IReadOnlyList<string> prompts, IReadOnlyList<string> answers, string answersName)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(answers, answersName);
        if (images.dim() != 4)
            throw new ArgumentException($"images must be float [N, 3, H, W], got [{string.Join(", ", images.shape)}].", nameof(images));
        int n = (int)images.shape[0];
        if (n == 0) throw new ArgumentException("images is empty; a preference dataset needs at least one row.", nameof(images));
        if (prompts.Count != n) throw new ArgumentException($"prompts has {prompts.Count} items, expected {n} (one per image).", nameof(prompts));
        if (answers.Count != n) throw new ArgumentException($"{answersName} has {answers.Count} items, expected {n} (one per image).", answersName);
        return n;
    }

    private static IEnumerable<long[]> Groups(long[] order, int groupSize)
    {
        int groups = Math.Max(1, order.Length / groupSize);
        for (int g = 0; g < groups; g++)
        {
            int start = g * groupSize;
            // The remainder joins the last full group so no group is left without a partner.
            int end = g == groups - 1 ? order.Length : start + groupSize;
            yield return order[start..end];
        }
    }
}
