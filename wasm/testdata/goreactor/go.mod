module goreactor

go 1.24
