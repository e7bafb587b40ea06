using Roam.Daemon.Hosting;

return await new RoamdCommandLine(RoamdHost.RunAsync).InvokeAsync(args);
