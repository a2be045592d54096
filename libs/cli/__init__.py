def main():  print("hi")
