Console.WriteLine("roamd: not yet");
