using System.Reflection;
using System.Runtime.CompilerServices;

namespace Roam.Replication.Engine;

/// <summary>
/// Compiles the code of a switch-over ahead of it. The hand-over runs once per migration, inside a VM's pause, and
/// the first call of a large async method costs its JIT compilation there: measured at 40-60 ms on this project's
/// 2-core machine (HandOverAsync's state machine alone was most of a 17 ms "admission"). A migration spends seconds
/// copying the disk first, so the types on that path are compiled in the background as soon as it starts.
/// </summary>
public static class JitWarmup
{
    private static readonly HashSet<Type> Prepared = [];

    /// <summary>Compiles, on a background thread and once per process, every method of <paramref name="types"/>, of the
    /// async state machines and lambdas nested in them.</summary>
    public static Task PrepareAsync(params Type[] types) => Task.Run(() =>
    {
        foreach (var type in types)
        {
            lock (Prepared)
                if (!Prepared.Add(type)) continue;
            Prepare(type);
        }
    });

    private static void Prepare(Type type)
    {
        if (type.ContainsGenericParameters) return;
        const BindingFlags all = BindingFlags.Instance | BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly;
        foreach (var method in type.GetMethods(all))
        {
            if (method.IsAbstract || method.ContainsGenericParameters || (method.MethodImplementationFlags & MethodImplAttributes.InternalCall) != 0) continue;
            try { RuntimeHelpers.PrepareMethod(method.MethodHandle); }
            catch (Exception ex) when (ex is ArgumentException or NotSupportedException or BadImageFormatException or TypeLoadException) { }
        }
        foreach (var constructor in type.GetConstructors(all))
        {
            try { RuntimeHelpers.PrepareMethod(constructor.MethodHandle); }
            catch (Exception ex) when (ex is ArgumentException or NotSupportedException or BadImageFormatException or TypeLoadException) { }
        }
        // Async methods' state machines and lambdas' closures are nested, compiler-generated types.
        foreach (var nested in type.GetNestedTypes(BindingFlags.NonPublic | BindingFlags.Public)) Prepare(nested);
    }
}
